'use strict';
// Request-rate load: wrk for GET (a C generator costs far less CPU per request than a Node one, and on 2
// cores it shares them with the server under test), a raw-socket loop for HEAD (wrk 4.1 stalls on it).
// Both take { threads, connections, seconds } and return { rps, requests, non2xx, socketErrors, p50ms, p99ms }.

const fs = require('node:fs');
const net = require('node:net');
const { now, secondsSince, fmt } = require('./basics');
const { run } = require('./processes');
const { selfTreeCpuSeconds } = require('./procfs');

const WRK_UNITS = { us: 1e-3, ms: 1, s: 1e3, m: 60e3 };

function parseWrk(out) {
  const num = (re) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : null;
  };
  const lat = (pct) => {
    const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? Number(m[1]) * WRK_UNITS[m[2]] : null;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: num(/^Requests\/sec:\s+([\d.]+)/m),
    requests: num(/^\s*(\d+) requests in/m),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) ?? 0,
    socketErrors: sock ? { connect: +sock[1], read: +sock[2], write: +sock[3], timeout: +sock[4] } : null,
    p50ms: lat(50),
    p99ms: lat(99),
  };
}

async function runWrk(url, script, { threads, connections, seconds }) {
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency', '-s', script, url];
  const r = await run('wrk', args, { timeoutMs: (seconds + 60) * 1000 });
  const w = parseWrk(r.stdout);
  if (w.rps === null) throw new Error(`could not parse wrk output:\n${r.stdout}\n${r.stderr}`);
  if (w.non2xx > 0) throw new Error(`wrk ${url}: ${w.non2xx} non-2xx answers, the run is not valid\n${r.stdout}`);
  const errs = w.socketErrors ? w.socketErrors.connect + w.socketErrors.read + w.socketErrors.write + w.socketErrors.timeout : 0;
  if (errs > 0) console.warn(`    warning: wrk socket errors ${JSON.stringify(w.socketErrors)} against ${url}`);
  return w;
}

/**
 * HEAD load: wrk 4.1 (Debian) and autocannon both wait for Content-Length bytes of body after a HEAD
 * answer and stall, so HEAD uses this loop instead: `connections` kept-alive sockets, one request in
 * flight on each, answers parsed up to the end of their headers (HEAD has no body). Single-threaded;
 * checked against wrk on GET (see BENCHMARKS.md) so it is not the bottleneck at these rates.
 * Same result shape as runWrk.
 */
function runHeadLoad(url, accept, { connections, seconds }) {
  const u = new URL(url);
  const reqBuf = Buffer.from(
    `HEAD ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUser-Agent: side-by-side-bench\r\n` + (accept ? `Accept: ${accept}\r\n` : '') + '\r\n',
  );
  const latencies = [];
  let done = 0;
  let non2xx = 0;
  const errors = { connect: 0, read: 0, write: 0, timeout: 0 };
  return new Promise((resolve) => {
    const start = now();
    const deadline = start + BigInt(seconds) * 1_000_000_000n;
    const sockets = [];
    let open = 0;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      const seconds = secondsSince(start);
      for (const s of sockets) s.destroy();
      latencies.sort((a, b) => a - b);
      const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] : null);
      resolve({ rps: done / seconds, requests: done, non2xx, socketErrors: errors, p50ms: pct(50), p99ms: pct(99) });
    };
    const openOne = () => {
      const s = net.connect({ host: u.hostname, port: Number(u.port) });
      sockets.push(s);
      open++;
      s.setNoDelay(true);
      let buf = Buffer.alloc(0);
      let sentAt = 0n;
      const fire = () => {
        if (now() >= deadline) {
          s.end();
          return;
        }
        sentAt = now();
        s.write(reqBuf);
      };
      s.on('connect', fire);
      s.on('data', (chunk) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const status = Number(buf.toString('latin1', 9, 12));
          if (status < 200 || status > 399) non2xx++;
          buf = buf.subarray(end + 4);
          const t = now();
          if (t <= deadline) {
            done++;
            latencies.push(Number(t - sentAt) / 1e6);
          }
          fire();
        }
      });
      s.on('error', (err) => {
        if (err.code === 'ECONNREFUSED') errors.connect++;
        else errors.read++;
      });
      s.on('close', () => {
        if (--open === 0) finish();
      });
    };
    for (let i = 0; i < connections; i++) openOne();
    setTimeout(finish, (seconds + 30) * 1000).unref();
  }).then((w) => {
    if (w.non2xx > 0) throw new Error(`HEAD ${url}: ${w.non2xx} answers outside 2xx/3xx, the run is not valid`);
    const errs = w.socketErrors.connect + w.socketErrors.read;
    if (errs > 0) console.warn(`    warning: socket errors ${JSON.stringify(w.socketErrors)} against ${url}`);
    return w;
  });
}

function wrkScript(file, method, accept) {
  const lines = [`wrk.method = "${method}"`];
  if (accept) lines.push(`wrk.headers["Accept"] = "${accept}"`);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/**
 * One run of a request-rate row against `url`: `script` is a wrk script file (wrkScript), or 'HEAD' for
 * the raw-socket loop with `accept`. Its value is requests per second; latencies and the client's CPU
 * (this process + wrk) come along.
 */
async function rateRun(url, script, accept, opts) {
  const c0 = selfTreeCpuSeconds();
  const w = script === 'HEAD' ? await runHeadLoad(url, accept, opts) : await runWrk(url, script, opts);
  const clientCpuSeconds = selfTreeCpuSeconds() - c0; // this process + wrk
  return {
    value: w.rps,
    requests: w.requests,
    p50ms: w.p50ms,
    p99ms: w.p99ms,
    socketErrors: w.socketErrors,
    clientCpuSeconds,
    note: `p50 ${fmt(w.p50ms, 2)} ms, p99 ${fmt(w.p99ms, 2)} ms, client CPU ${fmt(clientCpuSeconds, 2)} s`,
  };
}

module.exports = { rateRun, wrkScript };
