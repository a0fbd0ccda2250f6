// aliases file - Postfix-like, one alias a line:
//   sales@example.test: alice@example.test, bob@example.test
// Targets are full addresses separated by commas or white space; `#` comments and blank lines
// are allowed. A malformed line is reported with its number and skipped.

import { canonicalUser, isSafeUserName } from '../mail/address.js';
import { type LineProblem, parseEntries, splitLines } from './users-file.js';

export interface AliasEntry {
  alias: string;
  targets: string[];
  line: number;
}

/** parseAliases - entries in file order (first of duplicates wins) and the lines skipped. */
export function parseAliases(text: string): { aliases: AliasEntry[]; problems: LineProblem[] } {
  const { entries, problems } = parseEntries(text, parseAliasLine, (a) => a.alias, 'alias');
  return { aliases: entries, problems };
}

/** parseAliasLine - `alias: t1, t2` or why it is malformed. */
export function parseAliasLine(raw: string): { alias: string; targets: string[] } | { reason: string } {
  const colon = raw.indexOf(':');
  if (colon < 0) return { reason: 'expected alias: target[, target...]' };
  const alias = canonicalUser(raw.slice(0, colon));
  if (!isSafeUserName(alias)) return { reason: `bad alias ${JSON.stringify(raw.slice(0, colon).trim())} (a full address is expected)` };
  const targets = raw
    .slice(colon + 1)
    .split(/[,\s]+/)
    .filter((t) => t !== '')
    .map(canonicalUser);
  if (targets.length === 0) return { reason: `alias ${alias} has no target` };
  const bad = targets.find((t) => !isSafeUserName(t));
  if (bad !== undefined) return { reason: `bad target ${JSON.stringify(bad)} for ${alias}` };
  return { alias, targets: [...new Set(targets)] };
}

/** formatAliasLine - the line we write for an alias. */
export function formatAliasLine(alias: string, targets: string[]): string {
  return `${alias}: ${targets.join(', ')}`;
}

function lineAlias(raw: string): string | null {
  if (raw.trim() === '' || raw.trimStart().startsWith('#')) return null;
  const r = parseAliasLine(raw.replace(/\r$/, ''));
  return 'alias' in r ? r.alias : null;
}

/** setAlias - the file text with ALIAS's line replaced (or appended). */
export function setAlias(text: string, alias: string, targets: string[]): string {
  const lines = splitLines(text);
  const line = formatAliasLine(alias, targets);
  const at = lines.findIndex((l) => lineAlias(l) === alias);
  if (at >= 0) lines[at] = line;
  else lines.push(line);
  return lines.join('\n') + '\n';
}

/** deleteAlias - the file text without ALIAS's lines; null when it was not there. */
export function deleteAlias(text: string, alias: string): string | null {
  const lines = splitLines(text);
  const kept = lines.filter((l) => lineAlias(l) !== alias);
  if (kept.length === lines.length) return null;
  return kept.length ? kept.join('\n') + '\n' : '';
}
