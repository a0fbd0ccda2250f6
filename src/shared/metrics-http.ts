// The Prometheus endpoint: GET /metrics on [metrics] listen (loopback by default).

import http from 'node:http';

import { AggregatorRegistry } from 'prom-client';

import type { Logger } from './log.js';
import { registry } from './metrics.js';

/** Metrics of other threads of this process (their registries' JSON), merged into ours. */
export type MetricsJson = Awaited<ReturnType<typeof registry.getMetricsAsJSON>>;
export type MetricsSource = () => Promise<MetricsJson[]>;

export interface MetricsServer {
  address: string;
  close(): Promise<void>;
}

/** startMetricsServer - serve the registry; "host:port" ("" = off). */
export async function startMetricsServer(listen: string, logger: Logger, others?: MetricsSource): Promise<MetricsServer | null> {
  if (!listen) return null;
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(listen);
  if (!m) throw new Error(`[metrics] listen: expected host:port, got ${JSON.stringify(listen)}`);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    collect(others).then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(m[2]), m[1], () => resolve());
    });
  } catch (err) {
    // Several one-server processes sharing a config: the first one serves metrics.
    logger.warn({ event: 'metrics.listen_failed', listen, err: String(err) }, 'metrics endpoint not started');
    return null;
  }
  const port = (server.address() as { port: number }).port;
  logger.info({ event: 'metrics.listen', address: `${m[1]}:${port}` }, 'metrics endpoint listening');
  return {
    address: `http://${m[1]!.includes(':') ? `[${m[1]}]` : m[1]}:${port}/metrics`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function collect(others?: MetricsSource): Promise<string> {
  if (!others) return registry.metrics();
  const mine = await registry.getMetricsAsJSON();
  const theirs = await others();
  return AggregatorRegistry.aggregate([mine, ...theirs] as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics();
}
