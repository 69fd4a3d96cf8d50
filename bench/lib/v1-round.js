'use strict';
// One v1 push + pull round of a large layer through a running server, timed and checked: what
// bench/v1-layer.js repeats and side-by-side row 7 runs once a pair.
//   PUT /v1/repositories/bench/v1-layer/ (the image list naming the new id) -> PUT /v1/images/<id>/json ->
//   PUT /v1/images/<id>/layer (chunked, timed; the bytes and their payload checksum made in memory
//   beforehand) -> PUT .../checksum
//   GET /v1/images/<id>/json -> GET /v1/images/<id>/layer with curl into /dev/null (timed), then the
//   same GET hashed and verified against the payload checksum (untimed)
// Requests go over the shared keep-alive connection of bench/lib/http.js (`agent`: destroy it when done).

const crypto = require('node:crypto');
const { mibps, now, secondsSince } = require('./basics');
const { premadeChunks } = require('./bytes');
const { request, expectStatus, streamBody, hashedGet, expectPulled, curlGet } = require('./http');
const { cpuSeconds, selfTreeCpuSeconds, threadCpuSeconds, cpuByThread } = require('./procfs');

const REPO = 'bench/v1-layer';

/** Stream the layer's chunks (chunked transfer encoding, as Docker 1.x sends it). */
const putLayer = (base, id, chunks) => {
  let i = 0;
  return streamBody(base, 'PUT', `/v1/images/${id}/layer`, { next: () => chunks[i++] ?? null }, null, 200);
};
/** GET the layer, hashing what arrives into `hash`. */
const getLayer = (base, id, hash) => hashedGet(base, `/v1/images/${id}/layer`, hash);

async function round(base, sampler, runIndex, layerBytes) {
  const id = crypto.randomBytes(32).toString('hex');
  const json = Buffer.from(
    JSON.stringify({
      id,
      created: new Date().toISOString(),
      container_config: { Cmd: ['/bin/sh', '-c', `#(nop) bench run ${runIndex}`] },
      architecture: 'amd64',
      os: 'linux',
      Size: layerBytes,
    }),
  );

  // Push. v1 images belong to a repository: the index call lists the image first, as Docker 1.x does,
  // so that the image calls (no token: authentication is off) act in the one repository that lists it.
  sampler.enter(`push:${runIndex}`);
  let res = await request(base, 'PUT', `/v1/repositories/${REPO}/`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ id }]) });
  expectStatus('PUT repository (image list)', res, 200);
  res = await request(base, 'PUT', `/v1/images/${id}/json`, { headers: { 'content-type': 'application/json' }, body: json });
  expectStatus('PUT json', res, 200);

  // The layer is made, and its payload checksum computed, before the timed PUT (as row 1 of the
  // side-by-side run makes its blob): the client then spends no CPU on them while the server is measured.
  const payload = crypto.createHash('sha256').update(json).update('\n');
  const chunks = premadeChunks(`${id}:${runIndex}`, layerBytes, payload);
  const checksum = 'sha256:' + payload.digest('hex');
  let t0 = now();
  let srvCpu0 = cpuSeconds(sampler.pid);
  let cliCpu0 = selfTreeCpuSeconds();
  let threads0 = threadCpuSeconds(sampler.pid);
  const pushed = await putLayer(base, id, chunks);
  const pushSeconds = secondsSince(t0);
  const pushServerCpu = cpuSeconds(sampler.pid) - srvCpu0;
  const pushClientCpu = selfTreeCpuSeconds() - cliCpu0;
  const pushThreads = cpuByThread(sampler.pid, threads0, threadCpuSeconds(sampler.pid));
  if (pushed.bytes !== layerBytes) throw new Error(`PUT layer: sent ${pushed.bytes} bytes, meant ${layerBytes}`);
  chunks.length = 0; // let the layer's memory go before the pull

  res = await request(base, 'PUT', `/v1/images/${id}/checksum`, { headers: { 'x-docker-checksum-payload': checksum } });
  expectStatus('PUT checksum', res, 200);

  // Pull.
  sampler.enter(`pull:${runIndex}`);
  res = await request(base, 'GET', `/v1/images/${id}/json`);
  expectStatus('GET json', res, 200);
  if (!res.body.equals(json)) throw new Error('GET json: body differs from the JSON pushed');
  if (Number(res.headers['x-docker-size']) !== layerBytes) throw new Error(`GET json: X-Docker-Size ${res.headers['x-docker-size']}, expected ${layerBytes}`);
  if (res.headers['x-docker-checksum-payload'] !== checksum) {
    throw new Error(`GET json: X-Docker-Checksum-Payload ${res.headers['x-docker-checksum-payload']}, expected ${checksum}`);
  }

  // Timed with curl into /dev/null (a hashing client would be what is measured, see curlGet).
  srvCpu0 = cpuSeconds(sampler.pid);
  cliCpu0 = selfTreeCpuSeconds();
  threads0 = threadCpuSeconds(sampler.pid);
  const timed = await curlGet(new URL(`/v1/images/${id}/layer`, base).href);
  const pullSeconds = timed.seconds;
  const pullServerCpu = cpuSeconds(sampler.pid) - srvCpu0;
  const pullClientCpu = selfTreeCpuSeconds() - cliCpu0;
  const pullThreads = cpuByThread(sampler.pid, threads0, threadCpuSeconds(sampler.pid));
  sampler.enter('between');
  if (timed.status !== 200 || timed.bytes !== layerBytes) throw new Error(`GET layer: ${timed.status}, ${timed.bytes} bytes, expected 200, ${layerBytes}`);

  // Then verify the bytes, untimed: sha256(json + "\n" + received layer) must equal the payload
  // checksum computed while sending.
  const received = crypto.createHash('sha256').update(res.body).update('\n');
  expectPulled('GET layer', await getLayer(base, id, received), layerBytes, received, checksum);

  return {
    run: runIndex,
    imageId: id,
    checksum,
    pushSeconds,
    pushMiBps: mibps(layerBytes, pushSeconds),
    pushServerCpuSeconds: pushServerCpu,
    pushClientCpuSeconds: pushClientCpu,
    pushThreads,
    pullSeconds,
    pullMiBps: mibps(layerBytes, pullSeconds),
    pullServerCpuSeconds: pullServerCpu,
    pullClientCpuSeconds: pullClientCpu,
    pullThreads,
    maxRssPushMiB: sampler.phaseMaxMiB(`push:${runIndex}`),
    maxRssPullMiB: sampler.phaseMaxMiB(`pull:${runIndex}`),
  };
}

module.exports = { round };
