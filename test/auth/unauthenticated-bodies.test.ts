import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { basic } from '../helpers/auth';
import { http } from '../helpers/http';
import { as, startTenantRegistry, TENANT_USERS } from '../helpers/tenants';
import { sha256 } from '../helpers/v2';

// Issue 22, item 5 (second bullet) and item 7: POST /token buffered bodies up to 4 MiB before checking
// the credentials, and with no request timeout unfinished bodies waited for ever; a refused request kept
// reading a trickling body. Now POST /token reads at most 8 KiB, a request that has not authenticated gets
// http.unauthenticatedTimeout to send its headers and body, and a refusal (401/403/413/429) with a body
// still coming closes the connection. Uploads with valid credentials keep no time limit.
// Raw sockets, so that the test controls exactly what is sent and sees when the server closes.

interface Raw {
  socket: Socket;
  /** Everything the server sent. */
  text(): string;
  /** The status of the answer, once one came (0 before). */
  status(): number;
  /** Resolves when the server has closed the connection (end or close). */
  closed: Promise<void>;
  /** Keep sending `chunk` every `ms` until the connection is closed. */
  trickle(chunk: string, ms: number): void;
}

function open(port: number, head: string, body = ''): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const closed = new Promise<void>((res) => {
      const end = () => {
        done = true;
        clearInterval(timer);
        res();
      };
      socket.on('end', end);
      socket.on('close', end);
    });
    socket.on('data', (d) => (received += d.toString('latin1')));
    socket.on('error', () => {}); // EPIPE/ECONNRESET once the server has closed: that is the point
    socket.on('connect', () => {
      socket.write(head.replace(/\n/g, '\r\n') + '\r\n' + body);
      resolve({
        socket,
        text: () => received,
        status: () => Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0),
        closed,
        trickle: (chunk, ms) => {
          timer = setInterval(() => !done && socket.write(chunk), ms);
        },
      });
    });
    socket.on('error', reject);
  });
}

/** Whether the server closed the connection within `ms` (a generous bound: failing means it never did). */
const closedWithin = (raw: Raw, ms: number) => Promise.race([raw.closed.then(() => true), sleep(ms).then(() => false)]);

const tokenHead = (length: number) =>
  `POST /token HTTP/1.1\nHost: registry\nContent-Type: application/x-www-form-urlencoded\nContent-Length: ${length}\n`;

t.test('POST /token: a trickling body is cut at http.unauthenticatedTimeout; over 8 KiB is 413', async (t) => {
  const reg = await startTenantRegistry(t, { http: { unauthenticatedTimeout: 1 } });
  const slow = await open(reg.port, tokenHead(4000), 'grant_type=password&username=alice&password=');
  slow.trickle('x', 100);
  t.teardown(() => slow.socket.destroy());
  t.ok(await closedWithin(slow, 15_000), 'the server closed the connection');
  t.equal(slow.status(), 408, 'with 408 Request Timeout');
  t.match(slow.text(), /"code":"BAD_REQUEST","message":"the request did not authenticate in time"/, "in the token service's error body");

  const big = await http(reg.url, 'POST', '/token', 'a='.padEnd(9000, 'x'), { 'content-type': 'application/x-www-form-urlencoded' });
  t.equal(big.status, 413, 'a body over 8 KiB: 413, not read');
  t.equal(big.json?.errors?.[0]?.code, 'TOO_LARGE');
  const bigJson = await http(reg.url, 'POST', '/token', JSON.stringify({ password: 'x'.repeat(9000) }), { 'content-type': 'application/json' });
  t.equal(bigJson.status, 413, 'JSON too');

  const form = new URLSearchParams({ grant_type: 'password', username: 'alice', password: TENANT_USERS.alice, scope: 'repository:team-a/x:pull' });
  t.equal((await http(reg.url, 'POST', '/token', form.toString(), { 'content-type': 'application/x-www-form-urlencoded' })).status, 200, 'a real form still works');
});

t.test('40 unfinished unauthenticated bodies are closed by the server, not kept', async (t) => {
  const reg = await startTenantRegistry(t, { http: { unauthenticatedTimeout: 1 } });
  // Announced 4 MiB (what http.maxJsonBody let through before): refused at once, connection closed.
  const huge = await Promise.all(Array.from({ length: 40 }, () => open(reg.port, tokenHead(4 * 1024 * 1024), 'x'.repeat(64 * 1024))));
  // Under the limit, then silence: closed at the deadline.
  const stalled = await Promise.all(Array.from({ length: 40 }, () => open(reg.port, tokenHead(8000), 'grant_type=password&')));
  t.teardown(() => [...huge, ...stalled].forEach((r) => r.socket.destroy()));
  const all = await Promise.all([...huge, ...stalled].map((r) => closedWithin(r, 15_000)));
  t.same(all, all.map(() => true), 'the server closed all 80');
  t.same(new Set(huge.map((r) => r.status())), new Set([413]), 'the 4 MiB ones were answered 413');
  t.same(new Set(stalled.map((r) => r.status())), new Set([408]), 'the stalled ones 408');
  await sleep(50);
  const open_ = await new Promise<number>((res) => reg.app.server.getConnections((_e, n) => res(n)));
  t.equal(open_, 0, 'no connection left open');
});

t.test('a refused request with a body still coming is answered and its connection closed', async (t) => {
  // A long deadline: here the refusal alone must close the connection.
  const reg = await startTenantRegistry(t, { http: { unauthenticatedTimeout: 600 } });
  const chunked = (method: string, path: string, auth = '') =>
    `${method} ${path} HTTP/1.1\nHost: registry\nContent-Type: application/octet-stream\nTransfer-Encoding: chunked\n${auth}`;
  const carol = `Authorization: ${as('carol').authorization}\n`;
  const cases: [string, string, number][] = [
    ['anonymous v2 PATCH', chunked('PATCH', '/v2/alice/x/blobs/uploads/00000000-0000-4000-8000-000000000000'), 401],
    ['carol PATCH into team-a (403)', chunked('PATCH', '/v2/team-a/x/blobs/uploads/00000000-0000-4000-8000-000000000000', carol), 403],
    ['anonymous v1 layer PUT', chunked('PUT', `/v1/images/${'a'.repeat(64)}/layer`), 401],
    ['wrong password, v2 POST upload', chunked('POST', '/v2/alice/x/blobs/uploads/', `Authorization: ${basic('alice', 'wrong')}\n`), 401],
    ['POST /token announcing 1 MiB', tokenHead(1024 * 1024), 413],
  ];
  for (const [name, head, status] of cases) {
    const chunkedBody = head.includes('chunked');
    const raw = await open(reg.port, head, chunkedBody ? '1\r\nx\r\n' : 'x');
    raw.trickle(chunkedBody ? '1\r\nx\r\n' : 'x', 50);
    t.teardown(() => raw.socket.destroy());
    t.ok(await closedWithin(raw, 15_000), `${name}: the server closed the connection`);
    t.equal(raw.status(), status, `${name}: answered ${status}`);
    t.match(raw.text(), /\r\nconnection: close\r\n/i, `${name}: with Connection: close`);
  }
});

t.test('an upload with valid credentials is not cut by the deadline', async (t) => {
  const reg = await startTenantRegistry(t, { http: { unauthenticatedTimeout: 1 } });
  const alice = as('alice');
  const start = await http(reg.url, 'POST', '/v2/alice/slow/blobs/uploads/', undefined, alice);
  t.equal(start.status, 202);
  const location = new URL(start.headers.get('location')!, reg.url).pathname;
  const parts = Array.from({ length: 12 }, (_, i) => `part-${i};`);
  const data = parts.join('');
  const raw = await open(
    reg.port,
    `PATCH ${location} HTTP/1.1\nHost: registry\nAuthorization: ${alice.authorization}\nContent-Type: application/octet-stream\nContent-Length: ${data.length}\n`,
  );
  t.teardown(() => raw.socket.destroy());
  for (const p of parts) {
    await sleep(250); // the whole body takes three times the deadline
    raw.socket.write(p);
  }
  while (raw.status() === 0 && !(await closedWithin(raw, 50)));
  t.equal(raw.status(), 202, 'the slow PATCH was accepted');
  t.match(raw.text(), new RegExp(`\\r\\nrange: 0-${data.length - 1}\\r\\n`, 'i'), 'with all of its bytes');
  raw.socket.end();
  const put = await http(reg.url, 'PUT', `${location}?digest=${sha256(Buffer.from(data))}`, undefined, alice);
  t.equal(put.status, 201, 'and committed');
});

t.test('an upload with a Bearer token naming a user is not cut either', async (t) => {
  const reg = await startTenantRegistry(t, { http: { unauthenticatedTimeout: 1 } });
  const token = await http(reg.url, 'GET', '/token?service=registry&scope=repository:alice/slow:pull,push', undefined, as('alice'));
  const bearer = `Bearer ${token.json.token as string}`;
  const start = await http(reg.url, 'POST', '/v2/alice/slow/blobs/uploads/', undefined, { authorization: bearer });
  t.equal(start.status, 202);
  const location = new URL(start.headers.get('location')!, reg.url).pathname;
  const data = 'x'.repeat(12);
  const raw = await open(reg.port, `PATCH ${location} HTTP/1.1\nHost: registry\nAuthorization: ${bearer}\nContent-Length: ${data.length}\n`);
  t.teardown(() => raw.socket.destroy());
  for (const c of data) {
    await sleep(250);
    raw.socket.write(c);
  }
  while (raw.status() === 0 && !(await closedWithin(raw, 50)));
  t.equal(raw.status(), 202, 'the slow PATCH with a token was accepted');
});
