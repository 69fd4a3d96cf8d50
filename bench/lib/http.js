'use strict';
// HTTP clients: `send` (any request, a streamed or small body, the small answer buffered), and over it
// the single keep-alive connection of the v1 and S3 benchmarks (request, streamBody, hashedGet); curl for
// timed GETs.

const http = require('node:http');
const { spawn } = require('node:child_process');

/**
 * One request. `chunks` (any iterable of Buffers, e.g. an array or a generator) streams a body honouring
 * backpressure; `body` sends a small one. Resolves with the whole (small) response once it has been read.
 */
function send(url, { method = 'GET', headers = {}, agent, chunks, body, timeoutMs = 600_000 } = {}) {
  return new Promise((resolve, reject) => {
    let settled = false;
    let drainWaiter = null;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      if (drainWaiter) drainWaiter(err);
      req.destroy();
      reject(err);
    };
    const req = http.request(url, { method, headers, agent, timeout: timeoutMs });
    req.on('timeout', () => fail(new Error(`${method} ${url}: no progress within ${timeoutMs} ms`)));
    req.on('error', fail);
    req.on('close', () => {
      if (drainWaiter) drainWaiter(new Error(`${method}: connection closed while sending the body`));
    });
    req.on('response', (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('error', fail);
      res.on('end', () => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) });
      });
    });
    if (!chunks) {
      if (body !== undefined) req.setHeader('content-length', Buffer.byteLength(body));
      req.end(body);
      return;
    }
    const waitDrain = () =>
      new Promise((res, rej) => {
        const onDrain = () => {
          drainWaiter = null;
          res();
        };
        drainWaiter = (err) => {
          drainWaiter = null;
          req.off('drain', onDrain);
          rej(err);
        };
        req.once('drain', onDrain);
      });
    (async () => {
      for (const c of chunks) {
        if (settled) return;
        if (!req.write(c)) await waitDrain();
      }
      if (!settled) req.end();
    })().catch(fail);
  });
}

function expectStatus(what, res, status) {
  if (res.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
  }
}

// ---- HTTP client: one keep-alive connection, like a single client pushing or pulling ----

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** A small request on that connection; the whole response body is buffered. */
function request(base, method, urlPath, { headers = {}, body, timeoutMs = 600_000 } = {}) {
  return send(new URL(urlPath, base), { method, headers, agent, body: body ?? '', timeoutMs });
}

/**
 * Stream `gen`'s chunks as one request body (chunked transfer encoding, honouring backpressure),
 * hashing each chunk into `hash` (if given) as it goes. Resolves with the bytes sent and the response headers
 * once the answer (which must be `expect`) has been read whole.
 */
async function streamBody(base, method, urlPath, gen, hash, expect) {
  let bytes = 0;
  function* chunks() {
    for (let chunk; (chunk = gen.next()); ) {
      hash?.update(chunk);
      bytes += chunk.length;
      yield chunk;
    }
  }
  const res = await send(new URL(urlPath, base), {
    method,
    agent,
    headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
    chunks: chunks(),
  });
  if (res.status !== expect) throw new Error(`${method}: expected ${expect}, got ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
  return { bytes, headers: res.headers };
}

/** GET a large body (200 expected), hashing what arrives into `hash` without keeping it. */
function hashedGet(base, urlPath, hash) {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(urlPath, base), { method: 'GET', agent }, (res) => {
      if (res.statusCode !== 200) {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => reject(new Error(`GET ${urlPath}: expected 200, got ${res.statusCode} ${Buffer.concat(chunks).toString('utf8').slice(0, 500)}`)));
        return;
      }
      let bytes = 0;
      res.on('data', (c) => {
        bytes += c.length;
        hash.update(c);
      });
      res.on('error', reject);
      res.on('aborted', () => reject(new Error(`GET ${urlPath}: response aborted`)));
      res.on('end', () => resolve({ bytes, contentLength: Number(res.headers['content-length']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * After a hashedGet: the body must be `bytes` long (Content-Length and what arrived) and hash (`hash`,
 * fed by the GET) to `digest` ("sha256:<hex>"). `what` names the GET in the error.
 */
function expectPulled(what, pulled, bytes, hash, digest) {
  if (pulled.contentLength !== bytes) throw new Error(`${what}: Content-Length ${pulled.contentLength}, expected ${bytes}`);
  if (pulled.bytes !== bytes) throw new Error(`${what}: received ${pulled.bytes} bytes, expected ${bytes}`);
  const got = 'sha256:' + hash.digest('hex');
  if (got !== digest) throw new Error(`${what}: bytes differ from those sent (${got} != ${digest})`);
}

/**
 * GET `url` with curl into /dev/null, timed by curl (connect to last byte): { status, bytes, seconds }.
 * A client that does almost nothing per byte, so a timed pull measures the server: a client that
 * hashes what it receives saturates a core first (the Node one tops out near 700 MiB/s here, below
 * what either registry can serve). It does not check the bytes: callers do, with an untimed hashed GET.
 */
function curlGet(url) {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`curl ${url}: exit ${code} ${err.trim()}`));
      const [status, bytes, seconds] = out.trim().split(/\s+/).map(Number);
      resolve({ status, bytes, seconds });
    });
  });
}

module.exports = { send, expectStatus, agent, request, streamBody, hashedGet, expectPulled, curlGet };
