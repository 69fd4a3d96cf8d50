import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import type { Extra } from '@tapjs/core';

// Gate for tests that drive real external programs (dockerd, skopeo, podman, nginx, ...).
// A missing tool skips the test visibly on a developer machine and fails it in CI (CI=true),
// so a CI image that lost a package cannot turn an acceptance test into a silent pass.

/** Debian package that provides each tool (named in the skip/fail message). */
export const DEBIAN_PACKAGES: Readonly<Record<string, string>> = {
  dockerd: 'docker.io',
  docker: 'docker.io',
  containerd: 'containerd',
  ctr: 'containerd',
  runc: 'runc',
  skopeo: 'skopeo',
  umoci: 'umoci',
  podman: 'podman',
  buildah: 'buildah',
  nginx: 'nginx',
  htpasswd: 'apache2-utils',
  'docker-registry': 'docker-registry',
  busybox: 'busybox-static',
  openssl: 'openssl',
  curl: 'curl',
  mmdebstrap: 'mmdebstrap',
  prometheus: 'prometheus',
  initdb: 'postgresql',
  pg_ctl: 'postgresql',
  postgres: 'postgresql',
  runuser: 'util-linux',
  iptables: 'iptables',
};

/** The minimal part of a tap Test used here, so any test object fits. */
export interface ToolGate {
  fail(...args: [message: string, extra: Extra]): boolean;
  pass(...args: [message: string, extra: Extra]): boolean;
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Absolute path of an executable: `tool` itself when it contains a '/', otherwise the first match on PATH
 * (plus the sbin directories, which a non-login root shell may lack). undefined when not found.
 */
export function findTool(tool: string): string | undefined {
  if (tool.includes('/')) return isExecutableFile(tool) ? path.resolve(tool) : undefined;
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(extra)) dirs.push(extra);
  for (const dir of dirs) {
    const candidate = path.join(dir, tool);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/**
 * True when every tool is present. Otherwise records one failing assertion (CI=true) or one skipped
 * test point naming the missing tools and their Debian packages, and returns false: the caller returns.
 *
 *   if (!requireTools(t, ['dockerd', 'docker'])) return;
 */
export function requireTools(t: ToolGate, tools: readonly string[]): boolean {
  const missing = tools.filter((tool) => findTool(tool) === undefined);
  if (missing.length === 0) return true;
  const described = missing
    .map((tool) => {
      const pkg = DEBIAN_PACKAGES[path.basename(tool)];
      return pkg ? `${tool} (Debian package ${pkg}: apt-get install ${pkg})` : tool;
    })
    .join(', ');
  const reason = `missing tool${missing.length > 1 ? 's' : ''}: ${described}`;
  if (process.env.CI === 'true') {
    t.fail(`${reason}; CI=true requires every tool this test drives`, { missing });
  } else {
    t.pass(`requires ${missing.join(', ')}`, { skip: `${reason} (set CI=true to make this a failure)` });
  }
  return false;
}
