'use strict';
// The two registries of the side-by-side benchmark as child processes: ours (as `npm start` runs it) and
// theirs (the Go reference registry, Debian's docker-registry), each with its storage in its own dir.

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { sleep } = require('./basics');
const { send } = require('./http');
const { Child, freePort, serverCommand, envWithoutRegistryVars } = require('./processes');
const { readStatusKiB, RssSampler } = require('./procfs');

class Registry extends Child {
  /**
   * @param id 'ours' | 'theirs'
   * @param extraEnv variables added to the server's environment last, so they may override the ones set here
   * @param server which server runs: `kind` 'ours' or 'theirs' (default: as `id`; 'ours' as 'theirs' A/Bs two
   *   settings or builds of ours), and for ours `nodeArgs`, `dist` and `root` (see serverCommand)
   */
  constructor(id, dir, extraEnv = {}, server = {}) {
    super(id);
    this.id = id;
    this.kind = server.kind ?? id;
    this.serverOptions = { nodeArgs: server.nodeArgs, dist: server.dist, root: server.root };
    this.dir = dir;
    this.extraEnv = extraEnv;
  }

  url(p) {
    return new URL(p, this.base);
  }

  async start() {
    fs.mkdirSync(this.dir, { recursive: true });
    const port = await freePort();
    this.host = `127.0.0.1:${port}`;
    this.base = `http://${this.host}`;
    const env = envWithoutRegistryVars();
    if (this.kind === 'ours') {
      // cwd is the temp dir: no config.yml there, so the defaults plus these overrides.
      const command = serverCommand(this.serverOptions);
      Object.assign(env, command.env, {
        REGISTRY_HTTP_ADDR: this.host,
        REGISTRY_STORAGE_LOCAL_ROOT: path.join(this.dir, 'blobs'),
        REGISTRY_INDEX_PATH: path.join(this.dir, 'index.db'),
        REGISTRY_LOG_LEVEL: 'warn',
      }, this.extraEnv);
      this.spawn(process.execPath, command.args, { cwd: this.dir, env });
    } else {
      // Our own config (the Debian default one is broken): filesystem storage, delete on, no access log.
      const config = path.join(this.dir, 'config.yml');
      fs.writeFileSync(
        config,
        [
          'version: 0.1',
          'log:',
          '  level: warn',
          '  accesslog:',
          '    disabled: true',
          'storage:',
          '  filesystem:',
          `    rootdirectory: ${path.join(this.dir, 'data')}`,
          '  delete:',
          '    enabled: true',
          '  cache:',
          '    blobdescriptor: inmemory',
          '  maintenance:',
          '    uploadpurging:',
          '      enabled: false',
          'http:',
          `  addr: ${this.host}`,
          `  secret: ${crypto.randomBytes(16).toString('hex')}`,
          '',
        ].join('\n'),
      );
      this.spawn('docker-registry', ['serve', config], { cwd: this.dir, env: Object.assign(env, this.extraEnv) });
    }
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

    const deadline = Date.now() + 20_000;
    for (;;) {
      if (this.exitStatus) throw new Error(`${this.id} registry exited during start: ${JSON.stringify(this.exitStatus)}\n${this.logs()}`);
      try {
        const res = await send(this.url('/v2/'), { agent: this.agent, timeoutMs: 1000 });
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`${this.id} registry did not answer GET /v2/ within 20 s\n${this.logs()}`);
      await sleep(50);
    }
    this.sampler = new RssSampler(this.pid);
    return this.pid;
  }

  /**
   * Remove a blob's bytes from this registry's storage directory behind its back, once a run no longer
   * needs them, so a full run does not fill the shared disk (~40 GiB otherwise). The digests are never
   * used again, so neither registry notices. Returns false if the file was not where expected.
   */
  dropBlobFile(digest) {
    const hex = digest.replace(/^sha256:/, '');
    const file =
      this.kind === 'ours'
        ? path.join(this.dir, 'blobs', 'blobs', 'sha256', hex.slice(0, 2), hex)
        : path.join(this.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    if (!fs.existsSync(file)) {
      if (!this.warnedDrop) console.warn(`    warning: ${this.id}: blob file not found at ${file}; not freeing disk space`);
      this.warnedDrop = true;
      return false;
    }
    fs.rmSync(file, { force: true });
    return true;
  }

  rssMiB() {
    const k = readStatusKiB(this.pid, 'VmRSS');
    return k === null ? null : k / 1024;
  }

  hwmMiB() {
    const k = readStatusKiB(this.pid, 'VmHWM');
    return k === null ? null : k / 1024;
  }

  /** Stop sampling and the client connections, then the process (SIGTERM, then SIGKILL after `graceMs`). */
  async stop(graceMs = 15_000) {
    this.sampler?.stop();
    this.agent?.destroy();
    return super.stop(graceMs);
  }
}

module.exports = { Registry };
