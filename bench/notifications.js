'use strict';
// What webhook notifications cost: the registry with notifications off, with one endpoint whose receiver
// answers at once, and with one whose receiver never answers (hangs), side by side in one run (interleaved
// rounds, order rotated, medians), so the machine's noise falls on all three alike.
//
//   npm run build && node bench/notifications.js        (BENCH_ROUNDS, default 3; needs wrk for the GET row)
//
// Per round and setting: a fresh server (as `npm start` runs it), then
//   1. push latency: 150 small images pushed one after the other (config and layer by monolithic POST, then the
//      manifest with a tag: 3 events each), p50 and p99 of the whole image push;
//   2. push throughput: small images pushed by 8 clients for 5 s, images per second;
//   3. manifest GET by tag: wrk, 16 connections, 5 s, requests per second (pull events are off, the default).

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { MANIFEST_TYPE, smallImage, pushSmallImage, quantile } = require('./lib/small-image');
const { Child, freePort, serverCommand, envWithoutRegistryVars, tryVersion, waitForServer } = require('./lib/processes');
const { rateRun, wrkScript } = require('./lib/load');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const IMAGES = 150;
const PUSH_SECONDS = 5;
const PUSH_CLIENTS = 8;
const GET_SECONDS = 5;
const GET_CONNECTIONS = 16;


/** A receiver in this process: answers 204 at once, or never (hang). Counts the events it got. */
async function startReceiver(hang) {
  let events = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      events += JSON.parse(Buffer.concat(chunks).toString('utf8')).events.length;
      if (!hang) res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hook`,
    events: () => events,
    close: () => (server.closeAllConnections(), new Promise((resolve) => server.close(resolve))),
  };
}

async function startServer(setting, receiver) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-notify-'));
  const port = await freePort();
  const command = serverCommand();
  const env = {
    ...envWithoutRegistryVars(),
    ...command.env,
    REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    REGISTRY_STORAGE_LOCAL_ROOT: path.join(dir, 'blobs'),
    REGISTRY_INDEX_PATH: path.join(dir, 'index.db'),
    REGISTRY_LOG_LEVEL: 'error', // a hanging receiver means a warning per failed attempt
    REGISTRY_GC_INTERVAL: '0',
  };
  if (receiver) env.REGISTRY_NOTIFICATIONS_ENDPOINTS = JSON.stringify([{ name: 'bench', url: receiver.url, timeout: '60s' }]);
  const child = new Child(setting);
  child.spawn(process.execPath, command.args, { cwd: dir, env });
  const url = `http://127.0.0.1:${port}`;
  await waitForServer(url, child);
  return { url, stop: async () => (await child.stop(), fs.rmSync(dir, { recursive: true, force: true })) };
}


const median = (xs) => quantile(xs, 0.5);

async function measure(setting, wrk, tmp) {
  const receiver = setting === 'off' ? undefined : await startReceiver(setting === 'hang');
  const srv = await startServer(setting, receiver);
  try {
    const latencies = [];
    for (let i = 0; i < IMAGES; i++) {
      const img = smallImage();
      const t0 = performance.now();
      await pushSmallImage(srv.url, 'bench/seq', `t${i}`, img);
      latencies.push(performance.now() - t0);
    }
    let pushed = 0;
    const until = Date.now() + PUSH_SECONDS * 1000;
    await Promise.all(
      Array.from({ length: PUSH_CLIENTS }, async (_, c) => {
        for (let n = 0; Date.now() < until; n++) {
          await pushSmallImage(srv.url, `bench/par${c}`, `t${n}`, smallImage());
          pushed++;
        }
      }),
    );
    let getRps = NaN;
    if (wrk) {
      const script = wrkScript(path.join(tmp, 'get.lua'), 'GET', MANIFEST_TYPE);
      getRps = (await rateRun(`${srv.url}/v2/bench/seq/manifests/t0`, script, MANIFEST_TYPE, { threads: 2, connections: GET_CONNECTIONS, seconds: GET_SECONDS })).value;
    }
    return { p50: median(latencies), p99: quantile(latencies, 0.99), pushesPerS: pushed / PUSH_SECONDS, getRps, events: receiver?.events() ?? 0 };
  } finally {
    await srv.stop();
    await receiver?.close();
  }
}

async function main() {
  const wrk = tryVersion('wrk', ['--version']) !== undefined || fs.existsSync('/usr/bin/wrk');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-notify-wrk-'));
  const settings = ['off', 'on', 'hang'];
  const results = { off: [], on: [], hang: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = settings.slice(r % 3).concat(settings.slice(0, r % 3));
    for (const s of order) {
      const m = await measure(s, wrk, tmp);
      results[s].push(m);
      console.log(
        `round ${r + 1} ${s.padEnd(4)}: push p50 ${m.p50.toFixed(2)} ms, p99 ${m.p99.toFixed(2)} ms; ${m.pushesPerS.toFixed(1)} images/s with ${PUSH_CLIENTS} clients; ` +
          `manifest GET ${m.getRps.toFixed(0)} req/s; receiver got ${m.events} events`,
      );
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  const pct = (r) => `${r >= 1 ? '+' : ''}${((r - 1) * 100).toFixed(1)} %`;
  // Runs of one round are neighbours in time: the median of their ratios shrugs off the machine's drift.
  const ratio = (s, key) => median(results[s].map((m, i) => m[key] / results.off[i][key]));
  for (const s of settings) {
    const med = (key) => median(results[s].map((m) => m[key]));
    const vs = s === 'off' ? '' : ` (vs off: push p99 ${pct(ratio(s, 'p99'))}, images/s ${pct(ratio(s, 'pushesPerS'))}, GET ${pct(ratio(s, 'getRps'))})`;
    console.log(`median ${s.padEnd(4)}: push p50 ${med('p50').toFixed(2)} ms, p99 ${med('p99').toFixed(2)} ms, ${med('pushesPerS').toFixed(1)} images/s, GET ${med('getRps').toFixed(0)} req/s${vs}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
