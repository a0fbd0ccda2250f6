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
    /** Where postmaster@ and abuse@ of every local domain go ("" = the domain's first user). */
    postmaster: z.string().default(''),
    /** `alice+tag@dom` delivers to `alice@dom` when no user or alias has the full name ("" = off). */
    recipient_delimiter: z.string().max(1).default('+'),
    /** Argon2id cost for new password hashes: memory in KiB, passes, lanes (about 40 ms per hash by default). */
    argon2_memory_kib: z.number().int().min(8192).default(32768),
    argon2_time_cost: z.number().int().min(1).default(3),
    argon2_parallelism: z.number().int().min(1).max(16).default(1),
  })
  .strict();
export type AuthdConfig = z.infer<typeof AuthdConfig>;
