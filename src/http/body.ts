import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../errors';

/**
 * Before an error answer: never leave a request body unread on a kept-alive connection. A body still
 * flowing is drained (read and dropped). One abandoned half-way (destroyed: storage failed, or a size limit
 * was hit, while it streamed) cannot be, and its connection stopped reading: the client's next request on
 * it hung until the headers timeout (~76 s, seen retrying a push after a 507). Returns true when the
 * connection must therefore close after the answer.
 */
export function drainUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  if (req.destroyed) return true;
  req.resume();
  return false;
}

/**
 * Read a small request body whole, refusing anything over `limit` bytes without buffering it.
 * On refusal the rest of the body is drained (not buffered) so the error response can be sent.
 */
export function readSmallBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => new RegistryError('TOO_LARGE', `request body larger than ${limit} bytes`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onAborted = () => onError(new RegistryError('BAD_REQUEST', 'request body aborted'));
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
