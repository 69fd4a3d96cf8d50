import { connect } from 'node:net';
import t from 'tap';
import { startRegistry } from './helpers/server';

// Issue 23 items 2 and 3 over raw sockets (a client library would normalise these requests): empty
// path components in names, and methods no route knows, each answered in its protocol's error format.

/** Send raw bytes, read until the server closes or answers a whole response; returns status, headers, body. */
function raw(port: number, request: string): Promise<{ status: number; head: string; body: any }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const done = () => {
      const [head = '', body = ''] = data.split('\r\n\r\n', 2);
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = body;
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0), head: head.toLowerCase(), body: json });
    };
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      data += chunk;
      const length = /content-length: (\d+)/i.exec(data)?.[1];
      const headEnd = data.indexOf('\r\n\r\n');
      if (length !== undefined && headEnd >= 0 && data.length >= headEnd + 4 + Number(length)) {
        socket.destroy();
        done();
      }
    });
    socket.on('end', done);
    socket.on('error', reject);
    socket.write(request);
  });
}

t.test('names with empty path components are invalid, in both protocols', async (t) => {
  const reg = await startRegistry(t);
  for (const path of ['/v2//a/blobs/uploads/', '/v2/a//blobs/uploads/', '/v2/a//b/blobs/uploads/']) {
    const r = await raw(reg.port, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    t.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
    t.ok(['NAME_INVALID', 'NOT_FOUND'].includes(r.body?.errors?.[0]?.code), `${path}: an OCI error`);
  }
  t.equal((await reg.app.registry.index.allUploads()).length, 0, 'no upload was started');
  for (const path of ['/v1/repositories/a//b/', '/v1/repositories//a/b/tags']) {
    const r = await raw(reg.port, `PUT ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]`);
    t.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
    t.type(r.body?.error, 'string', `${path}: a v1 error`);
  }
  const ok = await raw(reg.port, 'POST /v2/a/b/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  t.equal(ok.status, 202, 'a proper name still works');
});

t.test('unknown, lowercase and unimplemented methods get 501 with the protocol\'s error body; CONNECT is answered', async (t) => {
  const reg = await startRegistry(t);
  const cases: [string, string][] = [
    ['FOO /v2/ HTTP/1.1', 'v2'],
    ['get /v2/ HTTP/1.1', 'v2'],
    ['BREW /v2/_catalog HTTP/1.1', 'v2'],
    ['OPTIONS /v2/ HTTP/1.1', 'v2'],
    ['PROPFIND /v2/a/b/tags/list HTTP/1.1', 'v2'],
    ['CONNECT /v2/a HTTP/1.1', 'v2'],
    ['FOO /v1/_ping HTTP/1.1', 'v1'],
    ['OPTIONS /v1/search HTTP/1.1', 'v1'],
    ['CONNECT example.com:443 HTTP/1.1', 'v1'],
  ];
  for (const [line, proto] of cases) {
    const r = await raw(reg.port, `${line}\r\nHost: x\r\n\r\n`);
    t.equal(r.status, 501, `${line}: 501`);
    if (proto === 'v2') t.equal(r.body?.errors?.[0]?.code, 'UNSUPPORTED', `${line}: OCI body`);
    else t.type(r.body?.error, 'string', `${line}: v1 body`);
  }
  const garbage = await raw(reg.port, 'GET /v2/ HTTP/1.1\r\nBad Header\r\n\r\n');
  t.equal(garbage.status, 400, 'a malformed header line');
  t.equal(garbage.body?.errors?.[0]?.code, 'BAD_REQUEST');
  const fine = await raw(reg.port, 'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
  t.equal(fine.status, 200);
});
