import path from 'node:path';
import { Writable } from 'node:stream';
import { buildApp } from '../../src/app';
import { defaultConfig, type DeepPartial } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { tempDir } from './server';

// A registry in this process whose log lines the test can read (request ids, dropped notifications):
// startRegistry's logger is silent.

export interface LoggedRegistry {
  url: string;
  host: string;
  config: Config;
  app: Awaited<ReturnType<typeof buildApp>>;
  logs: Record<string, unknown>[];
  /** The request ids of logged requests with this method whose URL path matches. */
  requestIds(method: string, url: RegExp): string[];
  close(): Promise<void>;
}

export async function startLoggedRegistry(t: { teardown(fn: () => unknown): void }, overrides: DeepPartial<Config> = {}): Promise<LoggedRegistry> {
  const root = tempDir(t);
  const config = defaultConfig({
    ...overrides,
    http: { addr: '127.0.0.1:0', ...overrides.http },
    storage: { ...overrides.storage, local: { root: path.join(root, 'blobs'), fsync: false, ...overrides.storage?.local } },
    index: { path: path.join(root, 'index.db'), ...overrides.index },
  });
  const logs: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const app = await buildApp(config, { logger: { level: 'info', stream } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
  };
  t.teardown(close);
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    config,
    app,
    logs,
    requestIds: (method, url) => logs.filter((l) => l.msg === 'request' && l.method === method && url.test(String(l.url))).map((l) => String(l.reqId)),
    close,
  };
}
