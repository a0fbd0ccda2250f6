// authd metrics - `auth` outcomes, on the shared registry.

import { Counter } from 'prom-client';

import { registry } from '../shared/metrics.js';

export const authAttempts = new Counter({
  name: 'fmail_auth_attempts_total',
  help: 'auth requests by result: ok, failed, limited (too many attempts), invalid (bad user name)',
  labelNames: ['result'] as const,
  registers: [registry],
});
