import { z } from 'zod';

/** [mailboxd] - the Mailbox Server (Maildir). */
export const MailboxdConfig = z
  .object({
    /** Folder holding one Maildir per user; relative paths are under data_dir. */
    maildirs: z.string().default('mail'),
    /** Largest message `store` accepts, in bytes. */
    max_message_size: z.number().int().positive().default(50 * 1024 * 1024),
    /** Per-user quota in bytes; 0 means none. */
    quota_bytes: z.number().int().nonnegative().default(0),
  })
  .strict();
export type MailboxdConfig = z.infer<typeof MailboxdConfig>;
