import { z } from 'zod';

/** [authd] - the Authentication Server. */
export const AuthdConfig = z
  .object({
    /** Dovecot passwd-file with the users; relative paths are under data_dir. */
    users_file: z.string().default('users'),
    /** Aliases file (`alias: target, target`); relative paths are under data_dir. */
    aliases_file: z.string().default('aliases'),
    /** Extra local domains besides the domains of the users. */
    local_domains: z.array(z.string()).default([]),
    /** Failed `auth` attempts allowed per user and per client address within the window. */
    max_failures: z.number().int().positive().default(5),
    failure_window_s: z.number().positive().default(300),
  })
  .strict();
export type AuthdConfig = z.infer<typeof AuthdConfig>;
