/** The dashboard on a fastify server of its own, bound to 127.0.0.1 unless told otherwise. */
import Fastify, { type FastifyInstance } from 'fastify';
import { createDashboard } from './create-dashboard.js';
import type { DashboardOptions } from './options.js';

/** Options of {@link startDashboard}. */
export interface StartDashboardOptions extends DashboardOptions {
  /** Interface to bind: 127.0.0.1 keeps it on this machine. @default '127.0.0.1' */
  host?: string;
  /** 0 picks a free port. @default 3000 */
  port?: number;
}

/** A running dashboard. */
export interface RunningDashboard {
  /** `http://host:port`. */
  url: string;
  app: FastifyInstance;
  /** Stops the server and what the dashboard opened (not the engine); idempotent. */
  close(): Promise<void>;
}

/** Starts the dashboard and resolves once it listens. */
export async function startDashboard(options: StartDashboardOptions): Promise<RunningDashboard> {
  const { host = '127.0.0.1', port = 3000, ...dashboard } = options;
  const app = Fastify({ logger: false, forceCloseConnections: true });
  await app.register(createDashboard(dashboard));
  await app.listen({ host, port });
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    app,
    close() {
      closing ??= app.close();
      return closing;
    },
  };
}
