/**
 * Checks, once before any suite runs, that every service the suites need answers. A
 * service that does not makes the run fail with its URL and how to start it: the suites
 * never skip silently.
 */
import net from 'node:net';
import { MYSQL_URL, PG_URL, REDIS_URL } from './services.js';

const HOW_TO_START = {
  postgres: 'docker compose up -d postgres (or: pg_ctlcluster <version> main start)',
  mysql:
    'docker compose up -d mariadb (or: start-stop-daemon --start --background --exec /usr/sbin/mariadbd)',
  redis: 'docker compose up -d redis (or: redis-server --daemonize yes)',
} as const;

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || defaultPort) });
    socket.setTimeout(3000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

function safe(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

export default async function setup(): Promise<void> {
  const checks = [
    { name: 'postgres', env: 'FLEET_TEST_PG_URL', url: PG_URL, port: 5432 },
    { name: 'mysql', env: 'FLEET_TEST_MYSQL_URL', url: MYSQL_URL, port: 3306 },
    { name: 'redis', env: 'FLEET_TEST_REDIS_URL', url: REDIS_URL, port: 6379 },
  ] as const;
  const down: string[] = [];
  for (const check of checks) {
    if (!(await reachable(check.url, check.port))) {
      down.push(
        `${check.name} is not answering at ${safe(check.url)} (set ${check.env} to point elsewhere). Start it with: ${HOW_TO_START[check.name]}`,
      );
    }
  }
  if (down.length > 0) throw new Error(`tenant-fleet tests need real services:\n  ${down.join('\n  ')}`);
}
