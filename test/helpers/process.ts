import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');

/** What `npm start` (package.json) runs: its variables (`NAME=value` before `node`) and node's arguments. */
export function startCommand(): { env: Record<string, string>; args: string[] } {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const words = pkg.scripts.start.trim().split(/\s+/);
  const env: Record<string, string> = {};
  while (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0] ?? '')) {
    const [name, ...value] = words.shift()!.split('=');
    env[name!] = value.join('=');
  }
  if (words.shift() !== 'node') throw new Error(`npm start runs ${JSON.stringify(pkg.scripts.start)}, not node`);
  return { env, args: words };
}

/** The node arguments of `npm start`, e.g. ['--initial-old-space-size=64', '--expose-gc', 'dist/server.js']. */
export function startArgs(): string[] {
  return startCommand().args;
}

/** The environment of a server process on `port` with its data under `dir`, plus `extra` settings. */
export function serverEnv(dir: string, port: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    REGISTRY_STORAGE_LOCAL_ROOT: path.join(dir, 'blobs'),
    REGISTRY_INDEX_PATH: path.join(dir, 'index.db'),
    REGISTRY_LOG_LEVEL: 'warn',
    ...extra,
  };
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Run the built server as `npm start` does (node flags included), with the given environment. */
export async function spawnServer(
  t: { teardown(fn: () => unknown): void },
  env: Record<string, string>,
  port: number,
  opts: { waitReady?: boolean } = {},
): Promise<ServerProcess> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  const start = startCommand();
  const child = spawn(process.execPath, start.args, { cwd: ROOT, env: { ...clean, ...start.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  t.teardown(() => stop('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  if (opts.waitReady !== false) {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${err}`);
      try {
        await fetch(`${url}/v1/_ping`).then((r) => r.arrayBuffer());
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`server did not start: ${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  return { child, url, stdout: () => out, stderr: () => err, exited, stop };
}
