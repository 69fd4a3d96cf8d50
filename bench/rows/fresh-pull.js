'use strict';
// Row 2b: pull right after push (issue 25). Each run pushes a fresh BENCH_BLOB_MB blob (monolithic,
// timed on its own) and at once pulls it with curl into /dev/null (timed: the row's value), as a CI
// pipeline pushes an image and a deploy pulls it. Nothing between the two (no sync, no verified GET
// first, unlike row 2a), so the pull reads whatever the push left in the page cache; the bytes are
// checked afterwards with an untimed hashed GET.

const crypto = require('node:crypto');
const { MiB, fmt, mibps, now, secondsSince } = require('../lib/basics');
const { makeBlob } = require('../lib/bytes');
const { measure } = require('../lib/ab');
const { hashedGet, expectPulled, curlGet } = require('../lib/http');
const { cpuSeconds, selfTreeCpuSeconds } = require('../lib/procfs');
const { pushMonolithic } = require('../lib/v2-client');
const { BLOB_MB } = require('../lib/options');

const DEF = {
  id: 'fresh-pull',
  group: 'fresh-pull',
  title: `2b. blob pull ${BLOB_MB} MiB right after its push (GET with curl, nothing in between)`,
  unit: 'MiB/s',
  better: 'higher',
  target: 1.0, // issue 25: at least as fast as the Go registry
  columns: [{ key: 'pushMiBps', label: 'its push MiB/s (median)', digits: 1 }],
};

async function run(ctx) {
  const bytes = BLOB_MB * MiB;
  await measure(ctx, DEF, async (reg, pair) => {
    const blob = makeBlob(`fresh-pull:${reg.id}:${pair}:${Date.now()}`, bytes);
    const repo = `bench/fresh-pull-${pair}`;
    const blobPath = `/v2/${repo}/blobs/${blob.digest}`;
    const t = now();
    await pushMonolithic(reg, repo, blob);
    const pushSeconds = secondsSince(t);
    blob.chunks = null; // the client's copy may go before the pull

    const c0 = cpuSeconds(reg.pid);
    const client0 = selfTreeCpuSeconds();
    const got = await curlGet(reg.url(blobPath).href);
    const serverCpuSeconds = cpuSeconds(reg.pid) - c0;
    const clientCpuSeconds = selfTreeCpuSeconds() - client0;
    if (got.status !== 200 || got.bytes !== bytes) throw new Error(`${reg.id} GET fresh blob: ${got.status}, ${got.bytes} bytes, expected 200, ${bytes}`);

    // A fast wrong answer must not count; checked after the timed GET so that one is the first read.
    const hash = crypto.createHash('sha256');
    expectPulled(`${reg.id} GET fresh blob`, await hashedGet(reg.base, blobPath, hash), bytes, hash, blob.digest);
    reg.dropBlobFile(blob.digest);
    const pushMiBps = mibps(bytes, pushSeconds);
    return { value: mibps(bytes, got.seconds), seconds: got.seconds, pushMiBps, pushSeconds, serverCpuSeconds, clientCpuSeconds, note: `push ${fmt(pushMiBps)} MiB/s` };
  });
}

module.exports = { group: 'fresh-pull', run };
