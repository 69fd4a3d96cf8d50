'use strict';
// What metrics cost: this build with metrics.enabled false against the same build with it on (and
// /metrics scraped every second, harsher than Prometheus' usual 15 s), side by side in one run:
// interleaved rounds (the order alternates), medians, so the machine's noise falls on both alike.
//
//   npm run build && node bench/metrics-overhead.js
//   BENCH_ROUNDS (5), BENCH_BLOB_MB (64), BENCH_SECONDS (5), BENCH_CONNECTIONS (64), BENCH_SMALL (30)
//
// Rows per round and server: a BENCH_BLOB_MB blob pushed monolithically (MiB/s, as bench row 1a);
// BENCH_SMALL small images pushed one after the other (config + 4 KiB layer + manifest, images/s: the
// per-request cost of a push); manifest GET by tag under wrk (req/s, as bench row 5a). Beside each rate, the
// server's CPU time per unit of work (/proc), which other load on a shared machine disturbs far less.

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { MiB, mibps, now, secondsSince, fmt, positiveInt, medianRow, table } = require('./lib/basics');
const { makeBlob } = require('./lib/bytes');
const { send, expectStatus } = require('./lib/http');
const { rateRun, wrkScript } = require('./lib/load');
const { smallImage, pushSmallImage } = require('./lib/oci-image');
const { cpuSeconds } = require('./lib/procfs');
const { Registry } = require('./lib/registry');
const { ACCEPT_MANIFEST, pushMonolithic } = require('./lib/v2-client');

const ROUNDS = positiveInt('BENCH_ROUNDS', 5);
const BLOB_MB = positiveInt('BENCH_BLOB_MB', 64);
const SECONDS = positiveInt('BENCH_SECONDS', 5);
const CONNECTIONS = positiveInt('BENCH_CONNECTIONS', 64);
const SMALL = positiveInt('BENCH_SMALL', 30);
const MANIFEST = '/v2/bench/small/manifests/v1';

/** Scrape /metrics every second while the server runs, as a Prometheus would (more often). */
function scrapeEverySecond(reg) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let scrapes = 0;
  const timer = setInterval(() => {
    send(reg.url('/metrics'), { agent }).then(
      (res) => {
        expectStatus('GET /metrics', res, 200);
        scrapes++;
      },
      (err) => console.warn(`    warning: scrape failed: ${err.message}`),
    );
  }, 1000);
  return { stop: () => (clearInterval(timer), agent.destroy()), count: () => scrapes };
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-metrics-'));
  const common = { REGISTRY_GC_INTERVAL: '0', REGISTRY_LOG_LEVEL: 'warn' };
  const servers = [
    { name: 'metrics off', reg: new Registry('ours', path.join(tmp, 'off'), { ...common, REGISTRY_METRICS_ENABLED: 'false' }) },
    { name: 'metrics on', reg: new Registry('ours', path.join(tmp, 'on'), { ...common, REGISTRY_METRICS_ENABLED: 'true' }) },
  ];
  const results = new Map(servers.map((s) => [s.name, { push: [], small: [], get: [], pushCpu: [], smallCpu: [], getCpu: [] }]));
  let scraper;
  try {
    for (const s of servers) await s.reg.start();
    scraper = scrapeEverySecond(servers[1].reg);
    const off = await send(servers[0].reg.url('/metrics'), {});
    if (off.status !== 404) throw new Error(`metrics off: /metrics answered ${off.status}`);
    const image = smallImage();
    for (const s of servers) await pushSmallImage(s.reg, 'bench/small', image, ['v1']);
    const script = wrkScript(path.join(tmp, 'get.lua'), 'GET', ACCEPT_MANIFEST);

    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const { name, reg } of order) {
        const r = results.get(name);
        const blob = makeBlob(`metrics:${name}:${round}:${Date.now()}`, BLOB_MB * MiB);
        let t = now();
        let cpu = cpuSeconds(reg.pid);
        await pushMonolithic(reg, `bench/push-${round}`, blob);
        r.push.push(mibps(blob.bytes, secondsSince(t)));
        r.pushCpu.push(((cpuSeconds(reg.pid) - cpu) * 1000) / BLOB_MB); // ms per MiB
        reg.dropBlobFile(blob.digest);

        t = now();
        cpu = cpuSeconds(reg.pid);
        for (let i = 0; i < SMALL; i++) await pushSmallImage(reg, `bench/small-${round}`, smallImage(), [`t${i}`]);
        r.small.push(SMALL / secondsSince(t));
        r.smallCpu.push(((cpuSeconds(reg.pid) - cpu) * 1000) / SMALL); // ms per image

        cpu = cpuSeconds(reg.pid);
        const w = await rateRun(reg.url(MANIFEST).href, script, ACCEPT_MANIFEST, { threads: 2, connections: CONNECTIONS, seconds: SECONDS });
        r.get.push(w.value);
        r.getCpu.push(((cpuSeconds(reg.pid) - cpu) * 1e6) / w.requests); // us per request
        console.log(
          `round ${round + 1}/${ROUNDS} ${name}: push ${fmt(r.push.at(-1), 0)} MiB/s (${fmt(r.pushCpu.at(-1), 2)} ms CPU/MiB), ` +
            `small ${fmt(r.small.at(-1), 1)} images/s (${fmt(r.smallCpu.at(-1), 1)} ms CPU each), GET ${fmt(w.value, 0)} req/s (${fmt(r.getCpu.at(-1), 1)} us CPU each)`,
        );
      }
    }
  } finally {
    scraper?.stop();
    for (const s of servers) await s.reg.stop().catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const [a, b] = servers.map((s) => results.get(s.name));
  const row = (title, key, digits) => medianRow(a, b, title, key, digits);
  console.log(`\nmedians of ${ROUNDS} interleaved rounds; /metrics scraped ${scraper.count()} times during the run\n`);
  console.log(
    table(
      [
        row(`blob push ${BLOB_MB} MiB, monolithic (MiB/s)`, 'push', 0),
        row(`small image push, sequential (images/s)`, 'small', 1),
        row(`manifest GET by tag, ${CONNECTIONS} connections (req/s)`, 'get', 0),
        row(`  server CPU per MiB pushed (ms)`, 'pushCpu', 2),
        row(`  server CPU per small image pushed (ms)`, 'smallCpu', 2),
        row(`  server CPU per manifest GET (us)`, 'getCpu', 1),
      ],
      ['', 'metrics off', 'metrics on', 'on vs off'],
    ),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
