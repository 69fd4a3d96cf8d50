import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app';
import { defaultConfig, type DeepPartial } from '../../src/config/load';
import type { Config } from '../../src/config/schema';

export interface TestRegistry {
  app: FastifyInstance;
  config: Config;
  /** http://127.0.0.1:PORT */
  url: string;
  host: string;
  port: number;
  dir: string;
  /** Stop the server (data stays until cleanup). */
  close(): Promise<void>;
  /** Stop and start again on the same data and port: for restart tests. */
  restart(): Promise<TestRegistry>;
}

const postgresByDir = new Map<string, string>();

/** A temp directory removed when the test ends. */
export function tempDir(t: { teardown(fn: () => void): void }, prefix = 'registry-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Start a registry in this process on 127.0.0.1 and a free port, with its data in a temp dir.
 * Stopped and removed at teardown. With TEST_STORAGE=s3 (and no storage.driver override) the blobs go
 * to an s3rver started for this registry, so the same tests prove both drivers; with TEST_INDEX=postgres
 * (and no index.driver override) the index is a new PostgreSQL database.
 */
export async function startRegistry(
  t: { teardown(fn: () => void | Promise<void>): void },
  overrides: DeepPartial<Config> = {},
  dir?: string,
  port = 0,
  appOptions: Parameters<typeof buildApp>[1] = {},
): Promise<TestRegistry> {
  if (process.env.TEST_STORAGE === 's3' && overrides.storage?.driver === undefined) {
    const { startS3rver } = await import('./s3rver');
    const s3 = await startS3rver(t);
    overrides = { ...overrides, storage: { ...overrides.storage, ...s3.overrides.storage } };
  }
  const root = dir ?? tempDir(t);
  if (process.env.TEST_INDEX === 'postgres' && overrides.index?.driver === undefined) {
    // A database of its own on this test file's cluster, one per data directory: a registry started again on
    // the same directory finds its index, as it would find index.db there.
    const { newPostgresDatabase } = await import('./index-db');
    let url = postgresByDir.get(root);
    if (!url) postgresByDir.set(root, (url = await newPostgresDatabase()));
    // One process on its own directory: stated shared, which the start requires of local storage with PostgreSQL.
    overrides = {
      ...overrides,
      index: { ...overrides.index, driver: 'postgres', postgres: { url, maxConnections: 6 } },
      storage: { ...overrides.storage, local: { shared: true, ...overrides.storage?.local } },
    };
  }
  const config = defaultConfig({
    ...overrides,
    http: { addr: '127.0.0.1:0', ...overrides.http },
    storage: { ...overrides.storage, local: { root: path.join(root, 'blobs'), fsync: false, ...overrides.storage?.local } },
    index: { path: path.join(root, 'index.db'), ...overrides.index },
    log: { level: 'silent', ...overrides.log },
  });
  const app = await buildApp(config, appOptions);
  await app.listen({ host: '127.0.0.1', port });
  const address = app.server.address() as { port: number };
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
  };
  t.teardown(close);
  const reg: TestRegistry = {
    app,
    config,
    url: `http://127.0.0.1:${address.port}`,
    host: `127.0.0.1:${address.port}`,
    port: address.port,
    dir: root,
    close,
    restart: async () => {
      await close();
      return startRegistry(t, overrides, root, address.port, appOptions);
    },
  };
  return reg;
}
