// Metrics of mail authentication, in the process-wide registry.

import { Counter, Histogram } from 'prom-client';

import { registry } from '../../shared/metrics.js';

export const authResults = new Counter({
  name: 'fmail_mail_auth_results_total',
  help: 'Inbound check results per message: check (spf, spf_helo, dkim, dmarc, arc, action) and result',
  labelNames: ['check', 'result'] as const,
  registers: [registry],
});

export const authCheckSeconds = new Histogram({
  name: 'fmail_mail_auth_check_seconds',
  help: 'Time from the end of DATA until the SPF/DKIM/DMARC/ARC verdict',
  buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
  registers: [registry],
});

export const dkimSigned = new Counter({
  name: 'fmail_dkim_signed_total',
  help: 'Messages DKIM-signed on their way out, by signing domain key type',
  labelNames: ['type'] as const,
  registers: [registry],
});

export const mtaStsResults = new Counter({
  name: 'fmail_mta_sts_total',
  help: 'Outbound deliveries by MTA-STS policy mode and outcome',
  labelNames: ['mode', 'result'] as const,
  registers: [registry],
});
