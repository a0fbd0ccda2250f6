// Types for the parts of mailauth we import from its lib/ files (its index.d.ts covers only
// the main module).
declare module 'mailauth/lib/tools.js' {
  export function formatAuthHeaderRow(method: string, status: Record<string, unknown>): string;
}
declare module 'mailauth/lib/mta-sts.js' {
  export interface MtaStsPolicy {
    id?: string | false;
    version?: string;
    mode: 'enforce' | 'testing' | 'none';
    maxAge?: number;
    mx?: string[];
    expires?: string;
  }
  export function resolvePolicy(address: string, opts?: { resolver?: (name: string, rrtype: string) => Promise<unknown> }): Promise<string | false>;
  export function parsePolicy(file: Buffer | string): MtaStsPolicy;
  export function validateMx(mx: string, policy: MtaStsPolicy): { valid: boolean; mode: string; match?: string; testing: boolean };
}
