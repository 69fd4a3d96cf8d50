import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findTool } from './tools';
import { mountsUnder, shortTempRoot, runProcess } from './daemon';

// skopeo, podman and buildah (containers/image clients) run hermetically for one test
// (real-clients.md sections 2 and 3):
//  - everything under one fresh temp dir: auth file (REGISTRY_AUTH_FILE), registries.conf, policy.json,
//    registries.d, storage.conf, containers.conf, podman/buildah --root/--runroot/--tmpdir, TMPDIR;
//  - the blob-info cache: containers/image as root always uses /var/lib/containers/cache/blob-info-cache-v1.boltdb
//    (no flag or variable moves it; podman 4.3 too, whatever --root says). Each tool therefore runs in a private
//    mount namespace (`unshare --mount`) where that directory is a bind mount of this test's own cache dir. That also
//    keeps overlay mounts made by podman/buildah inside the namespace: they vanish when the command exits.
//    Where unshare cannot mount (an unprivileged container), the tools run directly and the shared cache file is
//    deleted when the environment is created (the fallback real-clients.md describes).

export interface ToolResult {
  code: number | null;
  /** stdout as bytes (skopeo inspect --raw output must be compared byte for byte). */
  out: Buffer;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: Record<string, string>;
  input?: string | Buffer;
}

export interface ContainersEnv {
  dir: string;
  root: string;
  runroot: string;
  tmp: string;
  authfile: string;
  cacheDir: string;
  /** overlay, or vfs where overlay does not work (E2E_STORAGE_DRIVER overrides). */
  storageDriver: string;
  /** How the blob-info cache is kept private. */
  isolation: 'mount-namespace' | 'shared-cache-deleted';
  skopeo(args: string[], opts?: RunOptions): Promise<ToolResult>;
  podman(args: string[], opts?: RunOptions): Promise<ToolResult>;
  buildah(args: string[], opts?: RunOptions): Promise<ToolResult>;
  /** Remove buildah containers, unmount leftovers, delete the temp dir. Idempotent; also run at teardown. */
  cleanup(): Promise<void>;
}

const SYSTEM_CACHE_DIR = '/var/lib/containers/cache';
const SYSTEM_CACHE_FILE = path.join(SYSTEM_CACHE_DIR, 'blob-info-cache-v1.boltdb');
/**
 * podman/buildah state dirs used when --tmpdir/--runroot are not honoured. With the config written here nothing
 * is created in them (checked on podman 4.3 / buildah 1.28); removed at cleanup only if absent before.
 */
const STRAY = ['/run/libpod', '/run/containers'];

/** The deepest existing directory on the way to the system cache dir: the bind-mount target. */
function cacheMountTarget(): { target: string; inside: string } | undefined {
  for (let dir = SYSTEM_CACHE_DIR; dir !== '/' && dir !== '.'; dir = path.dirname(dir)) {
    if (existsSync(dir)) return { target: dir, inside: path.relative(dir, SYSTEM_CACHE_DIR) };
  }
  return undefined;
}

const BIND_SCRIPT = 'mount --bind "$1" "$2" && shift 2 && exec "$@"';

let namespaceWorks: boolean | undefined;
function canUseMountNamespace(probeDir: string): boolean {
  if (namespaceWorks !== undefined) return namespaceWorks;
  const unshare = findTool('unshare');
  const where = cacheMountTarget();
  if (!unshare || !where) return (namespaceWorks = false);
  const r = spawnSync(unshare, ['--mount', '--propagation', 'private', 'sh', '-c', BIND_SCRIPT, 'sh', probeDir, where.target, 'true'], {
    stdio: 'ignore',
    timeout: 10_000,
  });
  return (namespaceWorks = r.status === 0);
}

const OVERLAYFS_MAGIC = 0x794c7630;

/** overlay (real-clients.md: works natively on ext4), unless the kernel lacks it or dir is itself on overlayfs. */
function defaultStorageDriver(dir: string): string {
  try {
    if (!/\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'))) return 'vfs';
    if (statfsSync(dir).type === OVERLAYFS_MAGIC) return 'vfs';
  } catch {
    return 'vfs';
  }
  return 'overlay';
}

export async function runCommand(bin: string, args: string[], env: NodeJS.ProcessEnv, opts: RunOptions = {}): Promise<ToolResult> {
  const r = await runProcess(bin, args, { env, input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000 });
  return { code: r.code, out: r.stdoutBytes, stdout: r.stdout, stderr: r.stderr, ms: r.ms };
}

/** A private environment for skopeo/podman/buildah, removed at teardown. */
export async function containersEnv(t: { teardown(fn: () => void | Promise<void>): void; comment(...args: unknown[]): void }): Promise<ContainersEnv> {
  const dir = mkdtempSync(path.join(shortTempRoot(), 'ctrs-'));
  const root = path.join(dir, 'root');
  const runroot = path.join(dir, 'run');
  const tmp = path.join(dir, 'tmp');
  const cacheDir = path.join(dir, 'cache');
  const regd = path.join(dir, 'registries.d');
  for (const d of [root, runroot, tmp, cacheDir, regd]) mkdirSync(d, { recursive: true });
  const strays = STRAY.filter((p) => !existsSync(p));

  const storageDriver = process.env.E2E_STORAGE_DRIVER || defaultStorageDriver(dir);
  const authfile = path.join(dir, 'auth.json');
  writeFileSync(authfile, '{"auths":{}}\n');
  const policy = path.join(dir, 'policy.json');
  writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const registriesConf = path.join(dir, 'registries.conf');
  writeFileSync(registriesConf, 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n');
  const storageConf = path.join(dir, 'storage.conf');
  writeFileSync(storageConf, `[storage]\ndriver = "${storageDriver}"\nrunroot = "${runroot}"\ngraphroot = "${root}"\n`);
  const containersConf = path.join(dir, 'containers.conf');
  writeFileSync(
    containersConf,
    `[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "${tmp}"\nvolume_path = "${path.join(root, 'volumes')}"\n`,
  );

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REGISTRY_AUTH_FILE: authfile,
    CONTAINERS_CONF: containersConf,
    CONTAINERS_STORAGE_CONF: storageConf,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    TMPDIR: tmp,
    XDG_RUNTIME_DIR: path.join(dir, 'xdg-run'),
    XDG_CONFIG_HOME: path.join(dir, 'xdg-config'),
    XDG_DATA_HOME: path.join(dir, 'xdg-data'),
    BUILDAH_ISOLATION: 'chroot',
  };
  delete env.CONTAINER_HOST;
  delete env.CONTAINER_CONNECTION;
  delete env.DOCKER_CONFIG;
  delete env.BUILDAH_FORMAT;

  const where = cacheMountTarget();
  // E2E_NO_MOUNT_NAMESPACE=1 forces the fallback (to test it where unshare works).
  const isolation = process.env.E2E_NO_MOUNT_NAMESPACE !== '1' && canUseMountNamespace(cacheDir) && where ? 'mount-namespace' : 'shared-cache-deleted';
  let bindSource = cacheDir;
  if (isolation === 'mount-namespace' && where && where.inside !== '') {
    // The cache dir itself does not exist on this machine: bind a private tree over its nearest parent.
    bindSource = path.join(dir, 'cache-parent');
    mkdirSync(path.join(bindSource, where.inside), { recursive: true });
  }
  if (isolation === 'shared-cache-deleted') {
    rmSync(SYSTEM_CACHE_FILE, { force: true });
    t.comment(`no private mount namespace (unshare --mount unavailable or E2E_NO_MOUNT_NAMESPACE=1): using (after deleting) the shared blob-info cache ${SYSTEM_CACHE_FILE}`);
  }

  const run = (tool: string, args: string[], opts: RunOptions = {}) => {
    const bin = findTool(tool) ?? tool;
    const e = { ...env, ...opts.env };
    if (isolation === 'mount-namespace' && where) {
      const unshare = findTool('unshare')!;
      return runCommand(unshare, ['--mount', '--propagation', 'private', 'sh', '-c', BIND_SCRIPT, 'sh', bindSource, where.target, bin, ...args], e, opts);
    }
    return runCommand(bin, args, e, opts);
  };

  const skopeo = (args: string[], opts?: RunOptions) => run('skopeo', ['--policy', policy, '--registries.d', regd, '--tmpdir', tmp, ...args], opts);
  const podman = (args: string[], opts?: RunOptions) =>
    run(
      'podman',
      ['--root', root, '--runroot', runroot, '--storage-driver', storageDriver, '--cgroup-manager=cgroupfs', '--events-backend=file', '--tmpdir', tmp, ...args],
      opts,
    );
  const buildah = (args: string[], opts?: RunOptions) =>
    run('buildah', ['--root', root, '--runroot', runroot, '--storage-driver', storageDriver, '--registries-conf', registriesConf, ...args], opts);

  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      // Working containers hold layers (and, without a namespace, overlay mounts).
      if (findTool('buildah') && existsSync(path.join(root, `${storageDriver}-containers`))) {
        await buildah(['rm', '--all'], { timeoutMs: 30_000 }).catch(() => undefined);
      }
      for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m]);
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      for (const p of strays) rmSync(p, { recursive: true, force: true });
    })());
  t.teardown(cleanup);

  return { dir, root, runroot, tmp, authfile, cacheDir, storageDriver, isolation, skopeo, podman, buildah, cleanup };
}
