'use strict';
// Benchmark: a pull-through cache miss of one large blob against the upstream's own speed. The upstream is
// Debian's docker-registry; ours (dist/, as `npm start` runs it) proxies it under `hub/`. Each round pushes a
// fresh random blob upstream, GETs it from the upstream directly with curl (its own speed), then through our
// cache (a miss: streamed to curl while stored and verified), then again (a hit). Reports MiB/s of each and
// our server's peak RSS during the miss. Environment: BENCH_MB (blob size, default 1024), BENCH_ROUNDS (3),
// BENCH_FSYNC=false (our storage.local.fsync off: the ceiling without the disk), BENCH_UPSTREAM_MIBPS (the
// upstream reached through a relay sending at most that many MiB/s per connection, for the direct read and
// for our cache alike: an upstream as far away as a real one).

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { positiveInt, fmt, median, mibps } = require('./lib/basics');
const { streamBody, request, curlGet } = require('./lib/http');
const { Registry } = require('./lib/registry');
const { resetPeakRss } = require('./lib/procfs');
const { startThrottle } = require('./lib/throttle');

const MB = positiveInt('BENCH_MB', 1024);
const ROUNDS = positiveInt('BENCH_ROUNDS', 3);
const UPSTREAM_MIBPS = process.env.BENCH_UPSTREAM_MIBPS ? positiveInt('BENCH_UPSTREAM_MIBPS') : undefined;
const CHUNK = 1024 * 1024;

/** A generator of `mb` MiB of random bytes (fresh per round: new digests). */
function randomChunks(mb) {
  let left = mb;
  const seed = crypto.randomBytes(CHUNK);
  return {
    next() {
      if (left-- <= 0) return null;
      // Cheap variation per chunk: the first 16 bytes differ, the rest repeats (incompressible enough for HTTP).
      const c = Buffer.from(seed);
      crypto.randomFillSync(c, 0, 16);
      return c;
    },
  };
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-proxy-'));
  const upstream = new Registry('theirs', path.join(dir, 'upstream'));
  await upstream.start();
  const relay = UPSTREAM_MIBPS ? await startThrottle(upstream.host, UPSTREAM_MIBPS) : undefined;
  const upstreamRead = relay ? `http://${relay.host}` : upstream.base;
  const ours = new Registry('ours', path.join(dir, 'ours'), {
    REGISTRY_PROXY_UPSTREAMS: JSON.stringify([{ prefix: 'hub/', url: upstreamRead, timeout: 60 }]),
    REGISTRY_LOG_LEVEL: 'warn',
    ...(process.env.BENCH_FSYNC === 'false' ? { REGISTRY_STORAGE_LOCAL_FSYNC: 'false' } : {}),
  });
  await ours.start();
  const rows = { direct: [], miss: [], hit: [], rss: [], push: [] };
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const hash = crypto.createHash('sha256');
      const start = await request(upstream.base, 'POST', '/v2/bench/big/blobs/uploads/');
      const location = new URL(start.headers.location, upstream.base);
      // Chunked PATCH, then the digest in the final PUT.
      await streamBody(upstream.base, 'PATCH', location.pathname + location.search, randomChunks(MB), hash, 202).then(async ({ headers }) => {
        const next = new URL(headers.location, upstream.base);
        next.searchParams.set('digest', 'sha256:' + hash.digest('hex'));
        const put = await request(upstream.base, 'PUT', next.pathname + next.search);
        if (put.status !== 201) throw new Error(`PUT upstream: ${put.status}`);
        rows.digest = put.headers['docker-content-digest'];
      });
      const digest = rows.digest;
      // Our own push speed for the same size: a miss stores as much, through the same write path.
      const pushStart = process.hrtime.bigint();
      const ourHash = crypto.createHash('sha256');
      const ourUpload = await request(ours.base, 'POST', '/v2/bench/push/blobs/uploads/');
      const ourLocation = new URL(ourUpload.headers.location, ours.base);
      const pushed = await streamBody(ours.base, 'PATCH', ourLocation.pathname + ourLocation.search, randomChunks(MB), ourHash, 202);
      const pushSeconds = Number(process.hrtime.bigint() - pushStart) / 1e9;
      const ourNext = new URL(pushed.headers.location, ours.base);
      ourNext.searchParams.set('digest', 'sha256:' + ourHash.digest('hex'));
      await request(ours.base, 'PUT', ourNext.pathname + ourNext.search);
      rows.push.push(mibps(MB * CHUNK, pushSeconds));
      const direct = await curlGet(`${upstreamRead}/v2/bench/big/blobs/${digest}`);
      resetPeakRss(ours.pid);
      const miss = await curlGet(`${ours.base}/v2/hub/bench/big/blobs/${digest}`);
      const rss = ours.hwmMiB();
      const hit = await curlGet(`${ours.base}/v2/hub/bench/big/blobs/${digest}`);
      for (const [what, r] of [['direct', direct], ['miss', miss], ['hit', hit]]) {
        if (r.status !== 200 || r.bytes !== MB * CHUNK) throw new Error(`${what}: status ${r.status}, ${r.bytes} bytes`);
      }
      rows.direct.push(mibps(direct.bytes, direct.seconds));
      rows.miss.push(mibps(miss.bytes, miss.seconds));
      rows.hit.push(mibps(hit.bytes, hit.seconds));
      rows.rss.push(rss);
      console.log(
        `round ${round}: upstream direct ${fmt(rows.direct.at(-1))} MiB/s, cache miss ${fmt(rows.miss.at(-1))} MiB/s ` +
          `(${fmt((100 * rows.miss.at(-1)) / rows.direct.at(-1), 0)} %; our own PATCH of as many bytes ${fmt(rows.push.at(-1))} MiB/s), cache hit ${fmt(rows.hit.at(-1))} MiB/s, peak RSS during the miss ${fmt(rss, 0)} MiB`,
      );
      upstream.dropBlobFile(digest);
      ours.dropBlobFile(digest);
      ours.dropBlobFile('sha256:' + ourNext.searchParams.get('digest').slice(7));
    }
    const d = median(rows.direct);
    const m = median(rows.miss);
    console.log(
      `median of ${ROUNDS} (${MB} MiB blob${relay ? `, upstream relayed at ${UPSTREAM_MIBPS} MiB/s` : ''}): upstream direct ${fmt(d)} MiB/s, miss through the cache ${fmt(m)} MiB/s (${fmt((100 * m) / d, 0)} %), ` +
        `our own PATCH ${fmt(median(rows.push))} MiB/s, hit ${fmt(median(rows.hit))} MiB/s, peak RSS ${fmt(Math.max(...rows.rss), 0)} MiB`,
    );
  } finally {
    await ours.stop();
    await relay?.close();
    await upstream.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
