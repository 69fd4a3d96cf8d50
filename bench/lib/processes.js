'use strict';
// Child processes: our server's command line, servers with log tails and a clean stop, tools run to
// completion, ports.

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { sleep, now, secondsSince } = require('./basics');

/** A port that was free a moment ago on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Keep only the last `max` bytes of a stream (server logs, shown on failure). */
function tail(stream, max = 64 * 1024) {
  const t = { text: '' };
  stream.setEncoding('utf8');
  stream.on('data', (s) => {
    t.text = (t.text + s).slice(-max);
  });
  return t;
}

/**
 * How to start our server: the variables and node arguments of `npm start` (its `NAME=value`s and node
 * flags from package.json, then the script as an absolute path), with BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof") added before the script,
 * so every benchmark measures what users run. `command` is the same as one line, for reports.
 */
/** `root`: the checkout whose `npm start` and build run (this one by default); `dist`: another build's output dir. */
function serverCommand({ nodeArgs = process.env.BENCH_SERVER_NODE_ARGS, dist = null, root = path.resolve(__dirname, '..', '..') } = {}) {
  const start = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).scripts.start.trim();
  const words = start.split(/\s+/);
  const env = {};
  while (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0] ?? '')) {
    const [name, ...value] = words.shift().split('=');
    env[name] = value.join('=');
  }
  const [cmd, ...flags] = words;
  const script = flags.pop();
  if (cmd !== 'node' || !script || !script.endsWith('.js')) throw new Error(`npm start runs ${JSON.stringify(start)}, expected "node [flags] script.js"`);
  // `dist`: another build's output dir (a copy of dist/), whose server script is run instead, to A/B two builds.
  const file = dist ? path.resolve(dist, path.relative('dist', script)) : path.join(root, script);
  if (!fs.existsSync(file)) throw new Error(`${file} not found: run \`npm run build\` first`);
  const extra = (nodeArgs ?? '').split(/\s+/).filter(Boolean);
  const args = [...flags, ...extra, file];
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return { args, env, command: [...vars, 'node', ...flags, ...extra, dist ? file : script].join(' ') };
}

/** This process's environment minus REGISTRY_* variables: registries read those as configuration. */
function envWithoutRegistryVars() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_')) env[k] = v;
  return env;
}

/** A child process with log tails, exit status and SIGTERM-then-SIGKILL stop. */
class Child {
  constructor(name) {
    this.name = name;
    this.child = null;
    this.exitStatus = null;
  }
  spawn(cmd, args, { cwd, env }) {
    this.child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.stdout = tail(this.child.stdout);
    this.stderr = tail(this.child.stderr);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => resolve({ code, signal }));
      this.child.on('error', (err) => resolve({ code: null, signal: null, err: err.message }));
    });
    this.exited.then((s) => (this.exitStatus = s));
  }
  get pid() {
    return this.child?.pid;
  }
  logs() {
    const out = [];
    if (this.stdout?.text) out.push(`--- ${this.name} stdout (tail) ---\n${this.stdout.text}`);
    if (this.stderr?.text) out.push(`--- ${this.name} stderr (tail) ---\n${this.stderr.text}`);
    return out.join('\n');
  }
  /** SIGTERM, wait up to `graceMs`, then SIGKILL. */
  async stop(graceMs = 10_000) {
    if (!this.child || this.exitStatus) return this.exitStatus;
    this.child.kill('SIGTERM');
    let status = await Promise.race([this.exited, sleep(graceMs).then(() => null)]);
    if (!status) {
      this.child.kill('SIGKILL');
      status = await Promise.race([this.exited, sleep(5000).then(() => ({ code: null, signal: 'unknown (SIGKILL sent)' }))]);
      status.forced = true;
    }
    return status;
  }
  /** Last resort from a synchronous exit handler. */
  killNow() {
    if (this.child && !this.exitStatus) {
      try {
        this.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

function tryVersion(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
  if (r.error) return null;
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim())?.trim() ?? null;
}

function requireTool(cmd, args, apt) {
  const v = tryVersion(cmd, args);
  if (!v) throw new Error(`${cmd} not found: apt-get install -y --no-install-recommends ${apt}`);
  return v;
}

/** Run a command to completion; resolves with wall seconds, stdout and stderr; rejects on failure. */
function run(cmd, args, { timeoutMs = 600_000, env } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    const out = tail(child.stdout);
    const err = tail(child.stderr);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = secondsSince(t0);
      if (code !== 0) {
        reject(new Error(`${cmd} ${args.join(' ')}: ${signal ? `signal ${signal}` : `exit ${code}`}\n${err.text}${out.text}`));
      } else resolve({ seconds, stdout: out.text, stderr: err.text });
    });
  });
}

/** Wait until the registry at `url` answers /v2/ (any status), for at most ~10 s; `child`'s logs if it does not. */
async function waitForServer(url, child) {
  for (let i = 0; ; i++) {
    try {
      await fetch(`${url}/v2/`).then((r) => r.arrayBuffer());
      return;
    } catch {
      if (i > 200) throw new Error(`server did not start:\n${child.logs()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

module.exports = { freePort, serverCommand, envWithoutRegistryVars, Child, tryVersion, requireTool, run, waitForServer };
