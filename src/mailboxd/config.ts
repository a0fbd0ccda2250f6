import { z } from 'zod';

/** [mailboxd] - the Mailbox Server (Maildir). */
export const MailboxdConfig = z
  .object({
    maildirs: z.string().default('mail').describe('Folder holding one Maildir per user; relative paths are under data_dir.'),
    max_message_size: z.number().int().positive().default(50 * 1024 * 1024).describe('Largest message `store` accepts, in bytes.'),
    quota_bytes: z.number().int().nonnegative().default(0).describe('Per-user quota in bytes; 0 means none.'),
  })
  .strict();
export type MailboxdConfig = z.infer<typeof MailboxdConfig>;
