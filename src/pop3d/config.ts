import { z } from 'zod';

/** [pop3d] - the POP3 server. */
export const Pop3dConfig = z
  .object({
    host: z.string().default('0.0.0.0'),
    /** POP3 port (STLS offered); 0 picks a free port, -1 disables. */
    port: z.number().int().min(-1).max(65535).default(2110),
    /** POP3 over implicit TLS. */
    pop3s_port: z.number().int().min(-1).max(65535).default(2995),
  })
  .strict();
export type Pop3dConfig = z.infer<typeof Pop3dConfig>;
