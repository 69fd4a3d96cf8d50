import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { freePort } from './process';
import { tempDir } from './server';

// Peers for pull-through cache tests: a forwarding HTTP proxy that counts (and can corrupt or refuse)
// what goes to an upstream registry, and Debian's `docker-registry` (distribution 2.8) as a real upstream.

export interface Forwarded {
  method: string;
  path: string;
  status: number;
}

export interface Forwarder {
  url: string;
  host: string;
  /** Every request forwarded so far (status once answered). */
  requests: Forwarded[];
  /** Requests so far whose method and path match. */
  count(method: string, pathPattern: RegExp): number;
  /** Flip one byte in the middle of the bodies of blob GETs (the upstream's bytes no longer match their digest). */
  corrupt: boolean;
  /** Answer every request with this status instead of forwarding (e.g. 503, 429); 0: forward. */
  failWith: number;
  /** Delay before forwarding each blob GET, in ms (to make requests overlap). */
  blobDelayMs: number;
  close(): Promise<void>;
}

/** An HTTP forwarder on 127.0.0.1 in front of `target` (an http:// base URL). Closed at teardown. */
export async function startForwarder(t: { teardown(fn: () => void | Promise<void>): void }, target: string): Promise<Forwarder> {
  const base = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const entry: Forwarded = { method: req.method!, path: req.url!.split('?')[0]!, status: 0 };
    fw.requests.push(entry);
    if (fw.failWith) {
      entry.status = fw.failWith;
      req.resume();
      res.writeHead(fw.failWith, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"test"}]}');
      return;
    }
    const isBlobGet = req.method === 'GET' && /\/blobs\/sha256:/.test(entry.path);
    const forward = () => {
      const up = http.request(
        // Host stays as the client sent it: URLs the upstream derives from it (token realms) lead back through here.
        { host: base.hostname, port: base.port, method: req.method, path: req.url, headers: req.headers, agent },
        (upRes) => {
          entry.status = upRes.statusCode ?? 0;
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          if (!(fw.corrupt && isBlobGet && upRes.statusCode === 200)) {
            upRes.pipe(res);
            return;
          }
          const length = Number(upRes.headers['content-length'] ?? 0);
          let seen = 0;
          upRes.on('data', (chunk: Buffer) => {
            const mid = Math.floor(length / 2);
            if (mid >= seen && mid < seen + chunk.length) {
              chunk = Buffer.from(chunk);
              chunk[mid - seen] ^= 0xff;
            }
            seen += chunk.length;
            res.write(chunk);
          });
          upRes.on('end', () => res.end());
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (isBlobGet && fw.blobDelayMs > 0) setTimeout(forward, fw.blobDelayMs);
    else forward();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const fw: Forwarder = {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests: [],
    count: (method, pattern) => fw.requests.filter((r) => r.method === method && pattern.test(r.path)).length,
    corrupt: false,
    failWith: 0,
    blobDelayMs: 0,
    close: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  t.teardown(() => fw.close());
  return fw;
}

export interface DockerRegistry {
  url: string;
  host: string;
  port: number;
  stop(): Promise<void>;
  /** Start again on the same port and data (after stop). */
  start(): Promise<void>;
}

/**
 * Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 and a free port, filesystem storage in a temp
 * dir, with htpasswd Basic auth when `htpasswd` (a bcrypt file) is given. Stopped by its PID at teardown.
 */
export async function startDockerRegistry(t: { teardown(fn: () => void | Promise<void>): void }, opts: { htpasswd?: string } = {}): Promise<DockerRegistry> {
  const dir = tempDir(t, 'docker-registry-');
  const port = await freePort();
  mkdirSync(path.join(dir, 'data'));
  const config = path.join(dir, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log: {level: warn}',
      'storage:',
      `  filesystem: {rootdirectory: ${path.join(dir, 'data')}}`,
      '  delete: {enabled: true}',
      '  cache: {blobdescriptor: inmemory}',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: test-secret',
      ...(opts.htpasswd ? ['auth:', '  htpasswd:', '    realm: upstream', `    path: ${opts.htpasswd}`] : []),
      '',
    ].join('\n'),
  );
  let child: ReturnType<typeof spawn> | undefined;
  const url = `http://127.0.0.1:${port}`;
  const reg: DockerRegistry = {
    url,
    host: `127.0.0.1:${port}`,
    port,
    start: async () => {
      child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
      for (let i = 0; i < 100; i++) {
        const up = await fetch(`${url}/v2/`).then(
          () => true,
          () => false,
        );
        if (up) return;
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`docker-registry did not start: ${stderr}`);
    },
    stop: async () => {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    },
  };
  await reg.start();
  t.teardown(() => reg.stop());
  return reg;
}
