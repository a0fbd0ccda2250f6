// Prometheus metrics (prom-client), one registry for every server in the process. Servers
// count their events here; `[metrics] listen` serves them at /metrics.

import { isMainThread } from 'node:worker_threads';

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
// Process-wide figures once per process, not once per thread (they would be summed).
if (isMainThread) collectDefaultMetrics({ register: registry, prefix: 'fmail_' });

export const messagesReceived = new Counter({
  name: 'fmail_messages_received_total',
  help: 'Messages accepted by smtpd (250 sent)',
  labelNames: ['port'] as const,
  registers: [registry],
});

export const messagesDelivered = new Counter({
  name: 'fmail_messages_delivered_total',
  help: 'Recipients delivered: local (Maildir) or remote (SMTP 250)',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const messagesDeferred = new Counter({
  name: 'fmail_messages_deferred_total',
  help: 'Delivery attempts deferred (temporary failure)',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const messagesBounced = new Counter({
  name: 'fmail_messages_bounced_total',
  help: 'Recipients bounced (permanent failure or expiry)',
  registers: [registry],
});

export const messagesRejected = new Counter({
  name: 'fmail_messages_rejected_total',
  help: 'SMTP transactions or recipients refused, by reason',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const connections = new Gauge({
  name: 'fmail_connections',
  help: 'Open client connections',
  labelNames: ['server'] as const,
  registers: [registry],
});

export const queueSize = new Gauge({
  name: 'fmail_queue_messages',
  help: 'Messages in each queue, by state',
  labelNames: ['queue', 'state'] as const,
  registers: [registry],
});

export const ipcLatency = new Histogram({
  name: 'fmail_ipc_request_seconds',
  help: 'IPC request handling time on the server side',
  labelNames: ['server', 'message'] as const,
  buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  registers: [registry],
});
