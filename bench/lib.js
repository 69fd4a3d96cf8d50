'use strict';
// Small helpers shared by the benchmark scripts.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const net = require('node:net');
const { spawn, spawnSync } = require('node:child_process');

const MiB = 1024 * 1024;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mibps = (bytes, seconds) => bytes / MiB / seconds;
const now = () => process.hrtime.bigint();
const secondsSince = (t0) => Number(now() - t0) / 1e9;
const fmt = (n, d = 1) => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));

/** A positive integer from the environment, or `def`. */
function positiveInt(name, def) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

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


const CHUNK = MiB;
const SHA_FALLBACK_MB = 256;

/**
 * Benchmark bytes: AES-128-CTR keystream (encrypting zeros), keyed by `seed`. Deterministic, fast (AES-NI),
 * incompressible, and every chunk is a fresh buffer, so nothing queued in a socket is ever mutated.
 */
class LayerGenerator {
  constructor(seed, totalBytes) {
    const key = crypto.createHash('sha256').update(`bench:${seed}`).digest();
    this.cipher = crypto.createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
    this.zeros = Buffer.alloc(CHUNK);
    this.remaining = totalBytes;
  }
  /** Next chunk (at most 1 MiB), or null at the end. */
  next() {
    if (this.remaining <= 0) return null;
    const n = Math.min(CHUNK, this.remaining);
    this.remaining -= n;
    return this.cipher.update(n === CHUNK ? this.zeros : this.zeros.subarray(0, n));
  }
}

/**
 * `totalBytes` of benchmark bytes made in memory before a timed run (so the client spends no CPU on them
 * during it): LayerGenerator's chunks, each also fed to `hash` if given.
 */
function premadeChunks(seed, totalBytes, hash) {
  const gen = new LayerGenerator(seed, totalBytes);
  const chunks = [];
  for (let c; (c = gen.next()); chunks.push(c)) hash?.update(c);
  return chunks;
}

function sha256Speed() {
  const openssl = spawnSync('openssl', ['speed', '-evp', 'sha256', '-bytes', '16384', '-seconds', '1'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (!openssl.error && openssl.status === 0) {
    // "sha256   1732034.56k" : 1000s of bytes per second for the 16384-byte column.
    const line = openssl.stdout.split('\n').find((l) => /^\s*sha256\s+[\d.]+k\s*$/i.test(l));
    if (line) {
      const kBps = Number(line.trim().split(/\s+/)[1].replace(/k$/i, ''));
      return { MiBps: (kBps * 1000) / MiB, source: 'openssl speed -evp sha256 -bytes 16384 -seconds 1' };
    }
  }
  const buf = crypto.randomBytes(MiB);
  const h = crypto.createHash('sha256');
  const t0 = now();
  for (let i = 0; i < SHA_FALLBACK_MB; i++) h.update(buf);
  h.digest();
  return { MiBps: mibps(SHA_FALLBACK_MB * MiB, secondsSince(t0)), source: `node crypto sha256 over ${SHA_FALLBACK_MB} MiB` };
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout);
  return !r.error && Number.isInteger(n) && n > 0 ? n : 100;
})();

/**
 * The CPU times of a /proc/.../stat file (a process's or a thread's), in seconds: user and system, and
 * those of the children it has waited for. Throws if the file is gone.
 */
function statCpuSeconds(file) {
  const stat = fs.readFileSync(file, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state): the name may hold spaces
  const [user, sys, childUser, childSys] = f.slice(11, 15).map((n) => Number(n) / CLK_TCK); // fields 14-17
  return { user, sys, childUser, childSys };
}

/** CPU seconds of this process and of the children it has waited for (curl, skopeo, wrk, openssl). */
function selfTreeCpuSeconds() {
  const t = statCpuSeconds('/proc/self/stat');
  return t.user + t.sys + t.childUser + t.childSys;
}

/**
 * GET `url` with curl into /dev/null, timed by curl (connect to last byte): { status, bytes, seconds }.
 * A client that does almost nothing per byte, so a timed pull measures the server: a client that
 * hashes what it receives saturates a core first (the Node one tops out near 700 MiB/s here, below
 * what either registry can serve). It does not check the bytes: callers do, with an untimed hashed GET.
 */
function curlGet(url) {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`curl ${url}: exit ${code} ${err.trim()}`));
      const [status, bytes, seconds] = out.trim().split(/\s+/).map(Number);
      resolve({ status, bytes, seconds });
    });
  });
}

function readStatusKiB(pid, field) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm'));
    return m ? Number(m[1]) : null;
  } catch {
    return null; // process gone
  }
}

function cpuSeconds(pid) {
  try {
    const t = statCpuSeconds(`/proc/${pid}/stat`);
    return t.user + t.sys;
  } catch {
    return NaN;
  }
}

/** User and system CPU seconds of each live thread of `pid`, by thread id (the main thread's id is the pid). */
function threadCpuSeconds(pid) {
  const threads = new Map();
  let tids = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return threads; // process gone
  }
  for (const tid of tids) {
    try {
      const { user, sys } = statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
      threads.set(Number(tid), { user, sys });
    } catch {
      // the thread ended
    }
  }
  return threads;
}

/**
 * Where a process's CPU went between two threadCpuSeconds readings: its main thread, its busiest other
 * thread (in our server during a push: the upload worker, which hashes and writes), and all the others
 * (libuv's pool, V8's helpers). Each { user, sys } in seconds.
 */
function cpuByThread(pid, before, after) {
  const zero = { user: 0, sys: 0 };
  const used = [...after].map(([tid, b]) => {
    const a = before.get(tid) ?? zero;
    return { tid, user: b.user - a.user, sys: b.sys - a.sys };
  });
  const others = used.filter((t) => t.tid !== pid).sort((x, y) => y.user + y.sys - (x.user + x.sys));
  const part = ({ user, sys }) => ({ user: Math.round(user * 100) / 100, sys: Math.round(sys * 100) / 100 }); // clock ticks: 10 ms
  return {
    main: part(used.find((t) => t.tid === pid) ?? zero),
    busiest: part(others[0] ?? zero),
    rest: part(others.slice(1).reduce((sum, t) => ({ user: sum.user + t.user, sys: sum.sys + t.sys }), zero)),
  };
}

/**
 * The fastest `mib` could have moved with the CPU work measured, on `cores` cores: no faster than all
 * cores kept busy with the server's and the client's work, nor than any one thread doing its own part.
 */
function cpuBoundMiBps(mib, cores, serverCpu, clientCpu, threads) {
  const busy = (t) => t.user + t.sys;
  return mib / Math.max((serverCpu + clientCpu) / cores, busy(threads.main), busy(threads.busiest), clientCpu);
}

// ---- HTTP client: one keep-alive connection, like a single client pushing or pulling ----

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** A small request; the whole response body is buffered. */
function request(base, method, urlPath, { headers = {}, body, timeoutMs = 600_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(urlPath, base), { method, headers, agent, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.setHeader('content-length', body === undefined ? 0 : Buffer.byteLength(body));
    req.end(body);
  });
}

function expectStatus(what, res, status) {
  if (res.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
  }
}

/**
 * Stream `gen`'s chunks as one request body (chunked transfer encoding, honouring backpressure),
 * hashing each chunk into `hash` (if given) as it goes. Resolves with the bytes sent and the response headers
 * once the answer (which must be `expect`) has been read whole.
 */
function streamBody(base, method, urlPath, gen, hash, expect) {
  return new Promise((resolve, reject) => {
    let settled = false;
    let bytes = 0;
    let drainWaiter = null;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      if (drainWaiter) drainWaiter(err);
      req.destroy();
      reject(err);
    };
    const req = http.request(new URL(urlPath, base), {
      method,
      agent,
      headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
    });
    req.on('error', fail);
    req.on('close', () => {
      if (drainWaiter) drainWaiter(new Error(`${method}: connection closed while sending the body`));
    });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', fail);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== expect) return fail(new Error(`${method}: expected ${expect}, got ${res.statusCode} ${body.slice(0, 500)}`));
        if (settled) return;
        settled = true;
        resolve({ bytes, headers: res.headers });
      });
    });
    const waitDrain = () =>
      new Promise((res, rej) => {
        drainWaiter = (err) => {
          drainWaiter = null;
          req.off('drain', onDrain);
          rej(err);
        };
        const onDrain = () => {
          drainWaiter = null;
          res();
        };
        req.once('drain', onDrain);
      });
    (async () => {
      for (let chunk; (chunk = gen.next()); ) {
        if (settled) return;
        hash?.update(chunk);
        bytes += chunk.length;
        if (!req.write(chunk)) await waitDrain();
      }
      if (!settled) req.end();
    })().catch(fail);
  });
}

/** GET a large body (200 expected), hashing what arrives into `hash` without keeping it. */
function hashedGet(base, urlPath, hash) {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(urlPath, base), { method: 'GET', agent }, (res) => {
      if (res.statusCode !== 200) {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => reject(new Error(`GET ${urlPath}: expected 200, got ${res.statusCode} ${Buffer.concat(chunks).toString('utf8').slice(0, 500)}`)));
        return;
      }
      let bytes = 0;
      res.on('data', (c) => {
        bytes += c.length;
        hash.update(c);
      });
      res.on('error', reject);
      res.on('aborted', () => reject(new Error(`GET ${urlPath}: response aborted`)));
      res.on('end', () => resolve({ bytes, contentLength: Number(res.headers['content-length']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The disk's write speed: the faster of two ways to write `mb` MiB and fsync, through the page cache and
 * with O_DIRECT. A registry may write either way (ours writes uploads with O_DIRECT), so the limit is the
 * better one; on VMs where fresh page-cache pages are slow, buffered writes read far below the disk.
 */
function diskWriteSpeed(dir, mb) {
  const buffered = timedWrite(dir, mb, false);
  const direct = timedWrite(dir, mb, true);
  const best = direct && direct > buffered ? 'O_DIRECT' : 'buffered';
  return {
    MiBps: Math.max(buffered, direct ?? 0),
    bufferedMiBps: buffered,
    directMiBps: direct,
    source: `${mb} MiB + fsync in ${dir}, the faster of buffered 1 MiB writes (${Math.round(buffered)} MiB/s) and O_DIRECT 1 MiB writes (${direct === null ? 'not supported' : `${Math.round(direct)} MiB/s`}): ${best}`,
  };
}

/** MiB/s writing `mb` MiB of random bytes in 1 MiB writes, then fsync; null if O_DIRECT is refused. */
function timedWrite(dir, mb, direct) {
  const file = path.join(dir, 'disk-write-test.bin');
  // O_DIRECT needs page-aligned memory: WebAssembly memory is mapped on page boundaries. 64 MiB of
  // distinct random bytes, written over and over; prepared outside the timed section.
  const source = direct ? new Uint8Array(new WebAssembly.Memory({ initial: 1024, maximum: 1024 }).buffer) : null;
  const chunks = premadeChunks(`disk:${Date.now()}`, (direct ? 64 : mb) * MiB);
  if (source) chunks.forEach((c, i) => source.set(c, i * MiB));
  flushDirtyPages();
  let fd;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | (direct ? fs.constants.O_DIRECT : 0));
  } catch (err) {
    if (direct && err.code === 'EINVAL') return null;
    throw err;
  }
  const t0 = now();
  try {
    for (let i = 0; i < mb; i++) {
      const c = source ? source.subarray((i % 64) * MiB, (i % 64 + 1) * MiB) : chunks[i];
      for (let off = 0; off < c.length; ) off += fs.writeSync(fd, c, off, c.length - off, i * MiB + off);
    }
    fs.fsyncSync(fd);
  } catch (err) {
    if (direct && err.code === 'EINVAL') return null;
    throw err;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  return mibps(mb * MiB, secondsSince(t0));
}

/**
 * Wait until the processes `pids` have used no CPU for `quietMs` (at most `maxMs`), so work one registry
 * does in the background after a run (ours deletes a duplicate upload's staged copy 2 s after the
 * commit; both collect garbage when idle) is not done inside the next run, the other registry's.
 * Resolves with the seconds waited. CPU time ticks in 10 ms, so "quiet" means no tick at all.
 */
async function waitForQuiet(pids, { quietMs = 300, maxMs = 5000, pollMs = 50 } = {}) {
  const start = Date.now();
  const total = () => pids.reduce((sum, pid) => sum + (cpuSeconds(pid) || 0), 0);
  let last = total();
  let quietSince = Date.now();
  while (Date.now() - start < maxMs) {
    await sleep(pollMs);
    const now = total();
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) break;
  }
  return (Date.now() - start) / 1000;
}

/**
 * Write every dirty page in the machine back to disk (sync(1)), untimed, before a timed run, so the
 * writeback another run left behind (the Go registry never fsyncs: its blobs sit dirty in the page
 * cache for up to 30 s) does not compete for the disk and CPU inside this run.
 */
function flushDirtyPages() {
  const r = spawnSync('sync', [], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`sync failed: ${r.error?.message ?? `exit ${r.status}`}`);
}

/** A plain-text table: first column (or all, with `leftAll`) left-aligned, the rest right-aligned. */
function table(rows, header, leftAll = false) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) =>
    cells.map((c, i) => (i === 0 || leftAll ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The first fields of a results JSON file: which benchmark, when, on what. */
function resultHeader(benchmark) {
  return {
    benchmark,
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? null,
    units: { throughput: 'MiB/s (2^20 bytes per second)', memory: 'MiB (2^20 bytes)' },
  };
}

/** Median of numbers (NaN for none). */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * How to start our server: the node arguments of `npm start` (its node flags from package.json, then the
 * script as an absolute path), with BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof") added before the script,
 * so every benchmark measures what users run. `command` is the same as one line, for reports.
 */
function serverCommand() {
  const root = path.resolve(__dirname, '..');
  const start = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).scripts.start.trim();
  const [cmd, ...flags] = start.split(/\s+/);
  const script = flags.pop();
  if (cmd !== 'node' || !script || !script.endsWith('.js')) throw new Error(`npm start runs ${JSON.stringify(start)}, expected "node [flags] script.js"`);
  const file = path.join(root, script);
  if (!fs.existsSync(file)) throw new Error(`${script} not found: run \`npm run build\` first`);
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const args = [...flags, ...extra, file];
  return { args, command: ['node', ...flags, ...extra, script].join(' ') };
}

/** This process's environment minus REGISTRY_* variables: registries read those as configuration. */
function envWithoutRegistryVars() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_')) env[k] = v;
  return env;
}

const RSS_SAMPLE_MS = 50;

/** Samples a process's VmRSS every 50 ms; tracks the max overall and per labelled phase. */
class RssSampler {
  constructor(pid) {
    this.pid = pid;
    this.maxKiB = 0;
    this.samples = 0;
    this.phase = 'idle';
    this.phaseMaxKiB = {};
    this.timer = setInterval(() => this.sample(), RSS_SAMPLE_MS);
    this.sample();
  }
  sample() {
    const kib = readStatusKiB(this.pid, 'VmRSS');
    if (kib === null) return;
    this.samples++;
    if (kib > this.maxKiB) this.maxKiB = kib;
    if (kib > (this.phaseMaxKiB[this.phase] ?? 0)) this.phaseMaxKiB[this.phase] = kib;
  }
  /** Start a phase (takes a sample first so the boundary is attributed to the phase that ended). */
  enter(phase) {
    this.sample();
    this.phase = phase;
    this.sample();
  }
  maxMiB() {
    return this.maxKiB / 1024;
  }
  phaseMaxMiB(phase) {
    const k = this.phaseMaxKiB[phase];
    return k === undefined ? null : k / 1024;
  }
  stop() {
    this.sample();
    clearInterval(this.timer);
  }
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

module.exports = {
  agent,
  request,
  expectStatus,
  streamBody,
  hashedGet,
  LayerGenerator,
  premadeChunks,
  sha256Speed,
  readStatusKiB,
  cpuSeconds,
  threadCpuSeconds,
  cpuByThread,
  cpuBoundMiBps,
  diskWriteSpeed,
  flushDirtyPages,
  waitForQuiet,
  table,
  resultHeader,
  median,
  envWithoutRegistryVars,
  serverCommand,
  selfTreeCpuSeconds,
  curlGet,
  CLK_TCK,
  RSS_SAMPLE_MS,
  RssSampler,
  Child,
  MiB, sleep, mibps, now, secondsSince, fmt, positiveInt, freePort, tail };
