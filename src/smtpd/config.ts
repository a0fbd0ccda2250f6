import { z } from 'zod';

/** [smtpd] - the SMTP receiver. */
export const SmtpdConfig = z
  .object({
    /** Address the SMTP listeners bind to. */
    host: z.string().default('0.0.0.0'),
    /** MX port (plain, STARTTLS offered); 0 picks a free port, -1 disables. */
    port: z.number().int().min(-1).max(65535).default(2525),
    /** Submission port (STARTTLS, AUTH required). */
    submission_port: z.number().int().min(-1).max(65535).default(2587),
    /** Submission over implicit TLS. */
    submissions_port: z.number().int().min(-1).max(65535).default(2465),
    max_message_size: z.number().int().positive().default(25 * 1024 * 1024),
    max_recipients: z.number().int().positive().default(1000),
  })
  .strict();
export type SmtpdConfig = z.infer<typeof SmtpdConfig>;
