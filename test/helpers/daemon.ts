import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

// Process and mount plumbing shared by the helpers that run daemons (dockerd, containerd) and
// container tools (podman, buildah) for end-to-end tests.

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves true when the child exits within `ms`, false otherwise. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Mount points at or below dir, deepest first (what a killed daemon may leave behind). */
export function mountsUnder(dir: string): string[] {
  try {
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
      .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/')))
      .sort((a, b) => b.length - a.length);
  } catch {
    return [];
  }
}

/** A short temp root: unix socket paths (< 108 bytes) and overlay mount options have length limits. */
export function shortTempRoot(): string {
  const candidate = tmpdir();
  return candidate.length <= 40 ? candidate : '/tmp';
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout as bytes (for binary output such as `ctr content get`). */
  stdoutBytes: Buffer;
  ms: number;
}

/**
 * Run a program to completion, collecting its output; killed after `timeoutMs`. Never throws for a
 * non-zero exit (only when the program cannot be started).
 */
export function runProcess(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number } = {},
): Promise<ProcessResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const proc = spawn(file, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    proc.stdout.on('data', (c: Buffer) => out.push(c));
    proc.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.on('close', (code) => {
      clearTimeout(timer);
      const bytes = Buffer.concat(out);
      resolve({ code, stdout: bytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes: bytes, ms: Date.now() - started });
    });
    proc.stdin.on('error', () => {}); // the program may exit before reading its input
    proc.stdin.end(opts.input);
  });
}
