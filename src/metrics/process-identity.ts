/** Who this process is, for its snapshots: host, pid, the package version and when it started. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProcessIdentity } from './snapshot.js';

/** The identity of the running process; `version` from tenant-fleet's package.json. */
export function processIdentity(): ProcessIdentity {
  const host = hostname();
  return {
    id: `${host}:${process.pid}:${randomBytes(3).toString('hex')}`,
    host,
    pid: process.pid,
    version: packageVersion(),
    startedAt: Date.now(),
  };
}

function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'tenant-fleet' && pkg.version) return pkg.version;
    } catch {
      // Not here: look one folder up.
    }
    dir = dirname(dir);
  }
  return '0.0.0';
}
