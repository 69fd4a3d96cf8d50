import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { RegistryError, errorBodyFor } from '../errors';

// Requests that never reach a route: the HTTP parser refused them (an unknown or lowercase method, a
// malformed line, headers too large, a timeout), or they are CONNECT, which node hands to a separate
// event. They still get an answer in the error format of the protocol their path names.

/** The path of the raw request line, if the parser got that far (for the error format only). */
function pathOf(raw: unknown): string {
  const line = Buffer.isBuffer(raw) ? raw.subarray(0, 2048).toString('latin1').split('\r\n', 1)[0]! : '';
  return /^\S+\s+(\/\S*)/.exec(line)?.[1] ?? '/';
}

/** Answer on a raw socket, in the error body of the protocol `path` belongs to, and close it. */
export function answerRaw(socket: Duplex, path: string, e: RegistryError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(errorBodyFor(path, e));
  const headers = [
    `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}`,
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
    ...(path.startsWith('/v2') ? ['docker-distribution-api-version: registry/2.0'] : []),
  ];
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
}

/** fastify's clientErrorHandler: the parser's errors, answered in the protocol's error body. */
export function clientErrorHandler(err: Error & { code?: string; rawPacket?: unknown }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const path = pathOf(err.rawPacket);
  let e: RegistryError;
  if (err.code === 'HPE_INVALID_METHOD') e = new RegistryError('UNSUPPORTED', 'unrecognised request method', { status: 501 });
  else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') e = new RegistryError('BAD_REQUEST', 'the request took too long to arrive', { status: 408 });
  else if (err.code === 'HPE_HEADER_OVERFLOW') e = new RegistryError('BAD_REQUEST', 'request headers too large', { status: 431 });
  else e = new RegistryError('BAD_REQUEST', 'malformed HTTP request');
  answerRaw(socket, path, e);
}

/** CONNECT is no method of this registry: 501 instead of a dropped connection. */
export function refuseConnect(server: Server): void {
  server.on('connect', (request: { url?: string }, socket: Duplex) => {
    answerRaw(socket, request.url ?? '/', new RegistryError('UNSUPPORTED', 'CONNECT is not supported', { status: 501 }));
  });
}

/** Methods some route of the registry implements; any other is 501 wherever it is sent. */
export const IMPLEMENTED_METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE']);
