'use strict';
// What processes use, read from /proc: CPU seconds (per process, per thread, the whole machine) and
// memory (VmRSS sampled, VmHWM and its reset).

const fs = require('node:fs');
const { spawnSync } = require('node:child_process');
const { sleep, now } = require('./basics');

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

/** The parent PID of every live process, from /proc/<pid>/stat (field 4). */
function parentPids() {
  const parents = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // the process ended
    }
  }
  return parents;
}

/**
 * CPU seconds of a process and all its descendants (a postmaster and its backends, nginx and its
 * workers): each live one's user + sys, plus what the ended ones used (counted in their parent once it
 * has waited for them). NaN if `pid` is gone.
 */
function processTreeCpuSeconds(pid) {
  const parents = parentPids();
  const total = (p) => {
    let t;
    try {
      t = statCpuSeconds(`/proc/${p}/stat`);
    } catch {
      return p === pid ? NaN : 0; // a descendant that ended between the two reads
    }
    let sum = t.user + t.sys + t.childUser + t.childSys;
    for (const [child, parent] of parents) if (parent === p) sum += total(child);
    return sum;
  };
  return total(pid);
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

/** Busy CPU seconds of the whole machine (all cores), from /proc/stat. */
function machineBusySeconds() {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + (steal || 0)) / CLK_TCK;
}

/**
 * CPU bookkeeping for one measurement: what our server, theirs, this benchmark (with its finished
 * children) and everything else on the machine used, in core-seconds. "others" includes kernel threads
 * (e.g. writeback) and other users of the machine.
 */
class CpuMeter {
  constructor(registries) {
    this.registries = registries;
    this.start = this.snap();
  }
  snap() {
    const s = { t: now(), busy: machineBusySeconds(), self: selfTreeCpuSeconds() };
    for (const r of this.registries) s[r.id] = cpuSeconds(r.pid);
    return s;
  }
  stop() {
    const end = this.snap();
    const wall = Number(end.t - this.start.t) / 1e9;
    const d = { wallSeconds: wall, busy: end.busy - this.start.busy, bench: end.self - this.start.self };
    let servers = 0;
    for (const r of this.registries) {
      d[r.id] = end[r.id] - this.start[r.id];
      servers += d[r.id];
    }
    d.others = Math.max(0, d.busy - d.bench - servers);
    d.othersCores = wall > 0 ? d.others / wall : NaN;
    return d;
  }
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

/** Reset the kernel's peak RSS (VmHWM) of a process to its current RSS (Linux >= 4.0). */
function resetPeakRss(pid) {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

module.exports = {
  selfTreeCpuSeconds,
  readStatusKiB,
  cpuSeconds,
  processTreeCpuSeconds,
  machineBusySeconds,
  threadCpuSeconds,
  cpuByThread,
  CpuMeter,
  waitForQuiet,
  RSS_SAMPLE_MS,
  RssSampler,
  resetPeakRss,
};
