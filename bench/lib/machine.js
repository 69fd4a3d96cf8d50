'use strict';
// The machine's limits and state: sha256 and disk write speed, the CPU bound of a transfer, dirty
// pages, load, free page reporting.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { MiB, mibps, now, secondsSince } = require('./basics');
const { premadeChunks } = require('./bytes');
const { tryVersion } = require('./processes');

const SHA_FALLBACK_MB = 256;

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

/**
 * The fastest `mib` could have moved with the CPU work measured, on `cores` cores: no faster than all
 * cores kept busy with the server's and the client's work, nor than any one thread doing its own part.
 */
function cpuBoundMiBps(mib, cores, serverCpu, clientCpu, threads) {
  const busy = (t) => t.user + t.sys;
  return mib / Math.max((serverCpu + clientCpu) / cores, busy(threads.main), busy(threads.busiest), clientCpu);
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
 * Write every dirty page in the machine back to disk (sync(1)), untimed, before a timed run, so the
 * writeback another run left behind (the Go registry never fsyncs: its blobs sit dirty in the page
 * cache for up to 30 s) does not compete for the disk and CPU inside this run.
 */
function flushDirtyPages() {
  const r = spawnSync('sync', [], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`sync failed: ${r.error?.message ?? `exit ${r.status}`}`);
}

function loadavg() {
  return os.loadavg().map((x) => Number(x.toFixed(2)));
}

function machineInfo(tmp, fsType) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  const nproc = Number(tryVersion('nproc', [])) || os.cpus().length;
  return {
    cpus: nproc,
    cpuModel: model,
    memGiB: Number((memKiB / 1024 / 1024).toFixed(1)),
    tmpDir: path.dirname(tmp),
    tmpFs: fsType,
    freePageReportingKiB: reportedToHostKiB(),
  };
}

/**
 * On a VM with free page reporting (virtio-balloon; Firecracker here), memory the guest frees is handed back
 * to the host, and the next use of such a page costs a fault on the host. A page-cache fill from free memory
 * then costs ~1.1 s of system CPU per GiB instead of ~0.1 s (measured on the bench VM with a cold 1 GiB read),
 * which bounds every first read of a blob (row 7 GET) and buffered writes. KiB reported so far, or null.
 */
function reportedToHostKiB() {
  try {
    return Number(fs.readFileSync('/sys/module/page_reporting/parameters/reported_kib', 'utf8').trim());
  } catch {
    return null;
  }
}

module.exports = { sha256Speed, cpuBoundMiBps, diskWriteSpeed, flushDirtyPages, loadavg, machineInfo, reportedToHostKiB };
