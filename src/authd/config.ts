import { z } from 'zod';

/** [authd] - the Authentication Server. */
export const AuthdConfig = z
  .object({
    users_file: z.string().default('users').describe('Users, in Dovecot passwd-file format (`user:{SCHEME}hash::::::`); relative paths are under data_dir.'),
    aliases_file: z.string().default('aliases').describe('Aliases, one a line: `alias@dom: user@dom, user2@dom`; relative paths are under data_dir.'),
    local_domains: z.array(z.string()).default([]).describe('Local domains besides the domains of the users and aliases.'),
    max_failures: z.number().int().positive().default(5).describe('Failed `auth` attempts allowed per user and per client address within failure_window_s; then `too many attempts`.'),
    failure_window_s: z.number().positive().default(300).describe('The window, in seconds, over which failed `auth` attempts are counted.'),
    postmaster: z.string().default('').describe('Where postmaster@ and abuse@ of every local domain deliver ("" = the first user of that domain).'),
    recipient_delimiter: z.string().max(1).default('+').describe('`alice+tag@dom` delivers to `alice@dom` when no user or alias has the full name ("" = off).'),
    argon2_memory_kib: z.number().int().min(8192).default(32768).describe('Argon2id memory cost of new password hashes, in KiB.'),
    argon2_time_cost: z.number().int().min(1).default(3).describe('Argon2id passes for new password hashes (default cost: about 40 ms per hash).'),
    argon2_parallelism: z.number().int().min(1).max(16).default(1).describe('Argon2id lanes for new password hashes.'),
  })
  .strict();
export type AuthdConfig = z.infer<typeof AuthdConfig>;
