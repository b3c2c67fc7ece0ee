/**
 * The small HTTP server of `tenant-fleet worker --metrics-port`: `/metrics` is this
 * process's metrics in Prometheus text, `/health` answers 200 while the worker fetches
 * jobs and 503 while it starts or closes. One port serves both, so a Prometheus scrape
 * and a liveness/readiness probe point at the same container port. Plain `node:http`:
 * two routes need no framework.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../../reporting/errors.js';

/** Where the worker is: only `running` answers 200 on `/health`. */
export type WorkerHealth = 'starting' | 'running' | 'closing';

/** What `/metrics` reads (a prom-client `Registry` fits). */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** When set, `/metrics` needs it (bearer, or the Basic password); `/health` never does. */
  authorised?: (authorization: string | undefined) => boolean;
}

/** A running metrics server. */
export interface MetricsServer {
  /** `http://host:port`. */
  readonly url: string;
  /** What `/health` answers; the worker moves it along. */
  health: WorkerHealth;
  /** What `/metrics` serves; 503 until set. */
  source: MetricsSource | null;
  /** Stops listening and drops open connections; idempotent. */
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
}

/** Starts the server; rejects with a {@link ConfigError} when the port cannot be bound. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const state: { health: WorkerHealth; source: MetricsSource | null } = { health: 'starting', source: null };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'GET only\n');
    if (path === '/health') {
      const status = state.health === 'running' ? 200 : 503;
      return send(res, status, 'application/json', `${JSON.stringify({ status: state.health })}\n`);
    }
    if (path === '/metrics') {
      if (options.authorised && !options.authorised(req.headers.authorization)) {
        res.setHeader('www-authenticate', 'Basic realm="tenant-fleet", charset="UTF-8"');
        return send(
          res,
          401,
          'text/plain',
          'Expected a bearer token or Basic auth with the dashboard token\n',
        );
      }
      if (!state.source) return send(res, 503, 'text/plain', 'starting\n');
      return send(res, 200, state.source.contentType, await state.source.metrics());
    }
    send(res, 404, 'text/plain', 'Expected /metrics or /health\n');
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: Error) => {
      if (!res.headersSent) send(res, 500, 'text/plain', `${error.message}\n`);
      else res.destroy();
    });
  });
  server.listen(options.port, options.host);
  try {
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([error]) => Promise.reject(error)),
    ]);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(
      'metricsPort',
      `Expected ${options.host}:${options.port} to be free to serve /metrics and /health, got ${code}`,
      { cause: error },
    );
  }
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let closed: Promise<void> | null = null;
  return {
    url: `http://${host}:${port}`,
    get health() {
      return state.health;
    },
    set health(value: WorkerHealth) {
      state.health = value;
    },
    get source() {
      return state.source;
    },
    set source(value: MetricsSource | null) {
      state.source = value;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
