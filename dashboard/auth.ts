/**
 * The token guard: one fastify `onRequest` hook on the dashboard's whole context, so it
 * runs before every route, bull-board's static files and API included (bull-board's own
 * `handlerHooks` cover its API routes only).
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Whether `authorization` carries `token` as a bearer token or as a Basic password. */
export function authorised(authorization: string | undefined, token: string): boolean {
  if (!authorization) return false;
  const [scheme, value = ''] = authorization.split(' ', 2);
  if (scheme?.toLowerCase() === 'bearer') return same(value.trim(), token);
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value.trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 && same(decoded.slice(colon + 1), token);
  }
  return false;
}

/** The onRequest hook: 401 with a Basic challenge (browsers then ask) unless authorised. */
export function tokenGuard(token: string) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (authorised(request.headers.authorization, token)) return;
    await reply.code(401).header('www-authenticate', 'Basic realm="tenant-fleet", charset="UTF-8"').send({
      error: 'Unauthorized',
      message: 'Expected a bearer token or Basic auth with the dashboard token',
    });
  };
}
