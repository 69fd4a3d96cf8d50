'use strict';
// Many concurrent pullers: wrk with a Lua script that GETs a list of blob paths in turn, each thread from
// its own place in the list. wrk (C, epoll) keeps hundreds of connections busy for little CPU, in its
// own process, so the client neither shares the server's process nor starves it on 2 cores.

const fs = require('node:fs');
const { fmt } = require('./basics');
const { run } = require('./processes');

/** Writes the wrk script that rotates over `paths` (each thread starting elsewhere); returns `file`. */
function pullersScript(file, paths) {
  const lua = [
    `local paths = { ${paths.map((p) => JSON.stringify(p)).join(', ')} }`,
    'local threads = 0',
    'function setup(thread)',
    '  thread:set("start", threads * 7)',
    '  threads = threads + 1',
    'end',
    'function init(args)',
    '  n = start or 0',
    'end',
    'function request()',
    '  n = n + 1',
    '  return wrk.format("GET", paths[n % #paths + 1])',
    'end',
    // Exact counts (wrk's own summary rounds), one line the benchmark parses.
    'function done(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format("PULLERS %d %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.bytes, summary.duration,',
    '    e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))',
    'end',
    '',
  ];
  fs.writeFileSync(file, lua.join('\n'));
  return file;
}

/**
 * `connections` pullers on `threads` wrk threads for `seconds` against `baseUrl`, with a script from
 * pullersScript. Resolves with MiB/s received (bodies and headers), requests/s, the error counts, p50/p99.
 */
async function runPullers(baseUrl, script, { threads, connections, seconds }) {
  // wrk counts a response slower than --timeout as an error (and drops it from the latencies): multi-MiB
  // bodies shared among hundreds of connections may take seconds, so only a stall should count.
  const timeout = Math.max(60, 2 * seconds);
  const args = ['-t', String(Math.min(threads, connections)), '-c', String(connections), '-d', `${seconds}s`, '--timeout', `${timeout}s`, '-s', script, baseUrl];
  const r = await run('wrk', args, { timeoutMs: (seconds + timeout + 60) * 1000 });
  const line = /^PULLERS ([\d ]+)$/m.exec(r.stdout);
  if (!line) throw new Error(`could not parse the pullers' wrk output:\n${r.stdout}\n${r.stderr}`);
  const [requests, bytes, durationUs, connect, read, write, status, timeouts, p50us, p99us] = line[1].split(' ').map(Number);
  const wall = durationUs / 1e6;
  const errors = { connect, read, write, status, timeout: timeouts };
  const errorCount = connect + read + write + status + timeouts;
  if (errorCount > 0) console.warn(`    warning: pullers' errors ${JSON.stringify(errors)} against ${baseUrl}`);
  return {
    MiBps: bytes / 1024 / 1024 / wall,
    rps: requests / wall,
    requests,
    bytes,
    seconds: wall,
    errors,
    errorCount,
    p50ms: p50us / 1e3,
    p99ms: p99us / 1e3,
    note: `${fmt(requests / wall, 0)} req/s, ${errorCount} errors, p50 ${fmt(p50us / 1e3, 1)} ms, p99 ${fmt(p99us / 1e3, 1)} ms`,
  };
}

module.exports = { pullersScript, runPullers };
