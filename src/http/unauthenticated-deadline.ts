import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { RegistryError } from '../errors';
import { answerRaw } from './client-errors';

// The registry has no request timeout (a multi-GB layer takes as long as it takes), so a request that
// has not authenticated gets a deadline of its own: until it does, it has `timeoutMs` to send its headers
// and body, or its connection is closed. Unfinished bodies to POST /token otherwise held their buffers
// for ever. And a refused request whose body is still coming is answered with Connection: close, so
// node closes the connection instead of reading the rest of a trickling body.

/** Answers that refuse the request: nothing more of its body is wanted. */
const REFUSALS = new Set([401, 403, 413, 429]);
/** How long a connection closed with a body still coming keeps reading (and dropping) it: see lingerBeforeClosing. */
const LINGER_MS = 2000;

const timers = new WeakMap<object, NodeJS.Timeout>();

function clearDeadline(request: FastifyRequest): void {
  clearTimeout(timers.get(request.raw));
  timers.delete(request.raw);
}

/** The request has authenticated (valid credentials): its body may take as long as it needs. */
export function authenticated(request: FastifyRequest): void {
  clearDeadline(request);
}

/** Close a connection whose request missed its deadline, with a 408 if nothing was answered yet. */
function cut(request: FastifyRequest, reply: FastifyReply): void {
  const socket = request.raw.socket;
  if (request.raw.complete || socket.destroyed) return;
  request.log.info('closing the connection of a request that did not authenticate in time');
  if (!socket.writableEnded && !reply.raw.headersSent) {
    answerRaw(socket, request.url, new RegistryError('BAD_REQUEST', 'the request did not authenticate in time', { status: 408 }));
  }
  socket.destroySoon();
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * Close like nginx's lingering close: send the answer and a FIN, then read and drop what the client is still
 * sending for a moment before closing. Closing at once with unread bytes makes the kernel send a reset, and a
 * client still writing its body (skopeo refused by a quota mid-PATCH) then loses the answer it was sent and
 * reports a broken pipe instead of the error.
 */
function lingerBeforeClosing(socket: Socket): void {
  socket.destroySoon = () => {
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  };
}

export const unauthenticatedDeadline = fp(async (app: FastifyInstance, opts: { timeoutMs: number; bodies: boolean }) => {
  // Headers: node's own timeout, the same length.
  app.server.headersTimeout = opts.timeoutMs;

  app.addHook('onRequest', async (request, reply) => {
    if (!opts.bodies || request.raw.complete) return;
    const timer = setTimeout(() => cut(request, reply), opts.timeoutMs);
    timer.unref();
    timers.set(request.raw, timer);
  });

  app.addHook('onSend', async (request, reply, payload) => {
    if (request.raw.complete) return payload;
    if (REFUSALS.has(reply.statusCode)) reply.header('connection', 'close');
    // A request whose body was abandoned may have lost its socket already: nothing is left to linger on.
    const socket = request.raw.socket as Socket | null;
    if (reply.getHeader('connection') === 'close' && socket && !socket.destroyed) lingerBeforeClosing(socket);
    return payload;
  });

  // Answered: what is left of a refused body is node's to close, of an accepted one the handler's.
  app.addHook('onResponse', async (request) => clearDeadline(request));
});
