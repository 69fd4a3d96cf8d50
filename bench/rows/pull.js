'use strict';
// Row 2a: blob pull of a BENCH_BLOB_MB blob (the one row 1a pushed, or one pushed here untimed): the GET
// hashed and verified (untimed), then the same GET with curl into /dev/null (timed; a hashing client
// saturates a core before either registry does), so the timed GET is served from the page cache by both.

const crypto = require('node:crypto');
const { MiB, mibps } = require('../lib/basics');
const { makeBlob } = require('../lib/bytes');
const { measure } = require('../lib/ab');
const { hashedGet, curlGet } = require('../lib/http');
const { cpuSeconds, selfTreeCpuSeconds } = require('../lib/procfs');
const { pushMonolithic } = require('../lib/v2-client');
const { BLOB_MB } = require('../lib/options');

const DEF = { id: 'pull', group: 'pull', title: `2a. blob pull ${BLOB_MB} MiB (GET with curl, after an untimed verified GET)`, unit: 'MiB/s', better: 'higher' };

async function run(ctx) {
  const blobBytes = BLOB_MB * MiB;
  await measure(ctx, DEF, async (reg, pair) => {
    let target = ctx.pushed[reg.id][pair];
    if (!target) {
      const blob = makeBlob(`pull:${reg.id}:${pair}:${Date.now()}`, blobBytes);
      target = { repo: `bench/pull-${pair}`, digest: blob.digest };
      await pushMonolithic(reg, target.repo, blob);
    }
    const blobPath = `/v2/${target.repo}/blobs/${target.digest}`;
    // A fast wrong answer must not count: the same GET, hashed, untimed. It comes first so that the
    // timed GET is a warm one for both registries: this machine pages out file pages unused for a
    // minute (DAMON), so the blob pushed in row 1 was sometimes read from disk and sometimes not.
    const hash = crypto.createHash('sha256');
    await hashedGet(reg.base, blobPath, hash);
    const digest = `sha256:${hash.digest('hex')}`;
    if (digest !== target.digest) throw new Error(`${reg.id} GET blob: bytes hash to ${digest}, expected ${target.digest}`);
    const url = reg.url(blobPath);
    const c0 = cpuSeconds(reg.pid);
    const client0 = selfTreeCpuSeconds();
    const got = await curlGet(url);
    const serverCpuSeconds = cpuSeconds(reg.pid) - c0;
    const clientCpuSeconds = selfTreeCpuSeconds() - client0;
    if (got.status !== 200 || got.bytes !== blobBytes) throw new Error(`${reg.id} GET blob: ${got.status}, ${got.bytes} bytes, expected 200, ${blobBytes}`);
    reg.dropBlobFile(target.digest);
    return { value: mibps(blobBytes, got.seconds), seconds: got.seconds, serverCpuSeconds, clientCpuSeconds };
  });
}

module.exports = { group: 'pull', run };
