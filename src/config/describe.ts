// Describes the configuration schema as documentation: `fmail init` writes it as a commented
// fmail.toml, and the README's configuration reference is generated from the same walk.

import { z } from 'zod';

import { ConfigSchema } from './schema.js';

export interface SettingDoc {
  section: string; // '' for top-level keys
  key: string;
  description: string;
  defaultValue: unknown;
}

type AnySchema = z.ZodType & { description?: string; def?: { innerType?: AnySchema; type?: string; shape?: Record<string, AnySchema> } };

function unwrap(schema: AnySchema): AnySchema {
  let s = schema;
  for (let i = 0; i < 10 && s.def?.innerType; i++) s = s.def.innerType;
  return s;
}

function describeOf(schema: AnySchema): string {
  let s: AnySchema | undefined = schema;
  for (let i = 0; i < 10 && s; i++) {
    if (s.description) return s.description;
    s = s.def?.innerType;
  }
  return '';
}

/** settings - every setting with its section, description and default. */
export function settings(): SettingDoc[] {
  const defaults = ConfigSchema.parse({}) as Record<string, unknown>;
  const out: SettingDoc[] = [];
  const shape = (ConfigSchema as unknown as { shape: Record<string, AnySchema> }).shape;
  const sections: Array<[string, Record<string, AnySchema>]> = [];
  for (const [key, schema] of Object.entries(shape)) {
    const inner = unwrap(schema);
    if (inner.def?.type === 'object' && inner.def.shape) {
      sections.push([key, inner.def.shape]);
    } else {
      out.push({ section: '', key, description: describeOf(schema), defaultValue: defaults[key] });
    }
  }
  for (const [section, fields] of sections) {
    const sectionDefaults = defaults[section] as Record<string, unknown>;
    for (const [key, schema] of Object.entries(fields)) {
      out.push({ section, key, description: describeOf(schema), defaultValue: sectionDefaults[key] });
    }
  }
  return out;
}

/** tomlValue - a default written as TOML. */
export function tomlValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    return entries.length ? `{ ${entries.map(([k, x]) => `${JSON.stringify(k)} = ${tomlValue(x)}`).join(', ')} }` : '{}';
  }
  return '""';
}

/** sampleConfig - a fmail.toml with every setting commented out at its default. */
export function sampleConfig(): string {
  const lines = [
    '# FancyMail configuration. Every setting is shown at its default, commented out:',
    '# uncomment and change what you need. Paths are relative to data_dir unless absolute.',
    '# Check it with: fmail check -c fmail.toml',
    '',
  ];
  let current = '';
  for (const s of settings()) {
    if (s.section !== current) {
      current = s.section;
      lines.push('', `[${current}]`);
    }
    if (s.description) for (const d of s.description.split('\n')) lines.push(`# ${d}`);
    const value = s.section === '' && s.key === 'hostname' ? '"mail.example.com"' : tomlValue(s.defaultValue);
    lines.push(`# ${s.key} = ${value}`);
  }
  return lines.join('\n') + '\n';
}

/** configReference - the README's configuration reference, one table per section. */
export function configReference(): string {
  const out: string[] = [];
  let current: string | null = null;
  for (const s of settings()) {
    if (s.section !== current) {
      current = s.section;
      out.push('', current ? `### [${current}]` : '### Top level', '', '| key | default | meaning |', '|---|---|---|');
    }
    const def = s.section === '' && s.key === 'hostname' ? 'the machine\'s host name' : `\`${tomlValue(s.defaultValue)}\``;
    out.push(`| \`${s.key}\` | ${def} | ${s.description.replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`);
  }
  return out.join('\n').trim() + '\n';
}
