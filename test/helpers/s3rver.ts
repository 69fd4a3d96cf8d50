import { spawn } from 'node:child_process';
import path from 'node:path';
import type { DeepPartial } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { ROOT } from './process';
import { tempDir } from './server';

// The npm s3rver package (a devDependency) as an S3 service for tests (real-clients.md 7a): a child
// process on 127.0.0.1, a port the kernel picks (-p 0, read back from its "listening" line), data in a
// temp dir, one bucket. It lacks ListParts, ListMultipartUploads, UploadPartCopy and AbortMultipartUpload
// (the S3 driver needs none of them) and needs --openssl-legacy-provider for ListObjects pagination.

const S3RVER_JS = path.join(ROOT, 'node_modules/s3rver/bin/s3rver.js');

export interface S3rver {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  bucket: string;
  /** s3rver's data directory. */
  dir: string;
  pid: number;
  /** Config overrides for startRegistry / defaultConfig: storage.driver s3 against this server. */
  overrides: DeepPartial<Config>;
  /** The same settings for an S3Driver. */
  driverOptions: {
    bucket: string;
    region: string;
    endpoint: string;
    forcePathStyle: boolean;
    credentials: { accessKeyId: string; secretAccessKey: string };
    partSize: number;
    concurrency: number;
  };
  /** Its output so far (for diagnostics). */
  output(): string;
  /** Stop it (also done at teardown). */
  stop(): Promise<void>;
}

export const S3RVER_KEY = 'S3RVER';
export const PART_SIZE = 5 * 1024 * 1024;

export async function startS3rver(
  t: { teardown(fn: () => unknown): void },
  opts: { bucket?: string; partSize?: number; concurrency?: number } = {},
): Promise<S3rver> {
  const bucket = opts.bucket ?? 'registry';
  const dir = tempDir(t, 's3rver-');
  const child = spawn(
    process.execPath,
    [S3RVER_JS, '-d', dir, '-a', '127.0.0.1', '-p', '0', '--silent', '--configure-bucket', bucket],
    {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  };
  t.teardown(stop);

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3rver did not start within 20 s: ${out}`)), 20_000);
    const onData = () => {
      const m = /listening on [^\s:]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited (${code}) during start: ${out}`));
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;

  // Wait until the bucket answers (anonymous requests get 403 from s3rver, which is an answer).
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`${endpoint}/${bucket}`, { method: 'HEAD' });
      await res.arrayBuffer();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`s3rver at ${endpoint} does not answer: ${String(err)}; ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const partSize = opts.partSize ?? PART_SIZE;
  const concurrency = opts.concurrency ?? 4;
  return {
    endpoint,
    bucket,
    dir,
    pid: child.pid!,
    overrides: {
      storage: {
        driver: 's3',
        s3: {
          endpoint,
          bucket,
          forcePathStyle: true,
          accessKeyId: S3RVER_KEY,
          secretAccessKey: S3RVER_KEY,
          region: 'us-east-1',
          partSize,
          concurrency,
        },
      },
    },
    driverOptions: {
      bucket,
      region: 'us-east-1',
      endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY },
      partSize,
      concurrency,
    },
    output: () => out,
    stop,
  };
}
