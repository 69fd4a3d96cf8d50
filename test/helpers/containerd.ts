import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findTool } from './tools';
import { alive, exited, mountsUnder, shortTempRoot, waitExit, runProcess } from './daemon';

// A private standalone containerd (Debian package containerd, 1.6) for one test, started as
// real-clients.md section 5 does: its own config.toml, root, state and a short unix socket, all under one
// fresh temp dir, with the CRI plugin disabled. The opt plugin (which would otherwise install into
// /opt/containerd) is pointed into the temp dir too, so nothing is written outside it.

export interface CtrResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout as bytes (for `ctr content get`). */
  stdoutBytes: Buffer;
}

export interface CtrOptions {
  /** Kill ctr after this many ms (default 120 000). */
  timeoutMs?: number;
}

export interface Containerd {
  /** Run `ctr --address <socket> ...args` against this daemon; never throws for a non-zero exit. */
  ctr(args: string[], opts?: CtrOptions): Promise<CtrResult>;
  /** The gRPC unix socket path. */
  address: string;
  /** Temp dir holding config.toml, root, state, socket and the log. */
  dir: string;
  /** The daemon's log so far. */
  log(): string;
  /** SIGTERM, wait (SIGKILL after 15 s), unmount what is left under the dir, remove it. Idempotent; also run at teardown. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/** PIDs other than `except` whose command line names `dir` (shims of this daemon, should any exist). */
function processesUsing(dir: string, except: number | undefined): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === except || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir + '/')) pids.push(pid);
    } catch {
      /* gone */
    }
  }
  return pids;
}

const run = (file: string, args: string[], timeoutMs: number): Promise<CtrResult> => runProcess(file, args, { timeoutMs });

/**
 * Start a private containerd for this test and wait until `ctr --address <sock> version` answers.
 * Stopped and cleaned up at teardown.
 */
export async function startContainerd(t: { teardown(fn: () => void | Promise<void>): void }): Promise<Containerd> {
  const dir = mkdtempSync(path.join(shortTempRoot(), 'ctd-'));
  const address = path.join(dir, 'c.sock');
  const configFile = path.join(dir, 'config.toml');
  const logFile = path.join(dir, 'containerd.log');
  for (const sub of ['root', 'state', 'opt']) mkdirSync(path.join(dir, sub));
  writeFileSync(
    configFile,
    [
      'version = 2',
      `root = "${path.join(dir, 'root')}"`,
      `state = "${path.join(dir, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${path.join(dir, 'opt')}"`,
      '',
    ].join('\n'),
  );

  const containerdBin = findTool('/usr/bin/containerd') ?? findTool('containerd') ?? 'containerd';
  const ctrBin = findTool('/usr/bin/ctr') ?? findTool('ctr') ?? 'ctr';

  const logFd = openSync(logFile, 'a');
  const child = spawn(containerdBin, ['--config', configFile], { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  let spawnError: Error | undefined;
  child.on('error', (err) => (spawnError = err));

  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (!exited(child) && child.pid !== undefined) {
        child.kill('SIGTERM');
        if (!(await waitExit(child, STOP_TIMEOUT_MS))) {
          child.kill('SIGKILL');
          await waitExit(child, 5000);
        }
      }
      // Tests here run no tasks, so there should be no shims; any process still naming our dir is ours.
      for (const pid of processesUsing(dir, child.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        for (let i = 0; i < 20 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
      }
      for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m]);
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    })());
  t.teardown(stop);

  const ctr = (args: string[], opts: CtrOptions = {}) => run(ctrBin, ['--address', address, ...args], opts.timeoutMs ?? 120_000);

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (spawnError || exited(child)) {
      const why = spawnError ? spawnError.message : `exit code ${child.exitCode} signal ${child.signalCode}`;
      const text = log();
      await stop();
      throw new Error(`containerd did not start (${why}); log:\n${text}`);
    }
    const v = await ctr(['version'], { timeoutMs: 5000 });
    if (v.code === 0 && /Server:/.test(v.stdout)) break;
    if (Date.now() > deadline) {
      const text = log();
      await stop();
      throw new Error(`containerd not ready on ${address} after ${READY_TIMEOUT_MS / 1000} s: ${v.stderr}; log:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return { ctr, address, dir, log, stop };
}
