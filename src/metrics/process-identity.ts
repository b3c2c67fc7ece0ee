/** Who this process is, for its snapshots: host, pid, the package version and when it started. */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { packageVersion } from '../version.js';
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
