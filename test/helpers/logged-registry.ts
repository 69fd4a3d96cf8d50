import { Writable } from 'node:stream';
import { buildApp } from '../../src/app';
import type { DeepPartial } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { startRegistry } from './server';

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
  const logs: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const reg = await startRegistry(t, overrides, undefined, 0, { logger: { level: 'info', stream } });
  return {
    url: reg.url,
    host: reg.host,
    config: reg.config,
    app: reg.app as LoggedRegistry['app'],
    logs,
    requestIds: (method, url) => logs.filter((l) => l.msg === 'request' && l.method === method && url.test(String(l.url))).map((l) => String(l.reqId)),
    close: reg.close,
  };
}
