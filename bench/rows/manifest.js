'use strict';
// Rows 5a and 5b: manifest GET (wrk) and HEAD (raw-socket loop) by tag, requests per second at
// BENCH_CONNECTIONS connections, on a small image (one 4 KiB layer).

const path = require('node:path');
const { measure } = require('../lib/ab');
const { send, expectStatus } = require('../lib/http');
const { rateRun, wrkScript } = require('../lib/load');
const { smallImage, pushSmallImage } = require('../lib/oci-image');
const { ACCEPT_MANIFEST } = require('../lib/v2-client');
const { CONNECTIONS, THREADS, SECONDS } = require('../lib/options');

const GET = { id: 'manifest-get', group: 'manifest', title: `5a. manifest GET by tag, ${CONNECTIONS} connections`, unit: 'req/s', better: 'higher' };
const HEAD = { id: 'manifest-head', group: 'manifest', title: `5b. manifest HEAD by tag, ${CONNECTIONS} connections`, unit: 'req/s', better: 'higher' };
const MANIFEST = '/v2/bench/small/manifests/v1';

async function run(ctx) {
  const image = smallImage();
  for (const reg of ctx.regs) await pushSmallImage(reg, 'bench/small', image, ['v1']);
  const getScript = wrkScript(path.join(ctx.tmp, 'manifest-get.lua'), 'GET', ACCEPT_MANIFEST);
  for (const reg of ctx.regs) {
    // Check once what wrk will hammer: a wrong answer would be measured just as fast.
    let res = await send(reg.url(MANIFEST), { agent: reg.agent, headers: { accept: ACCEPT_MANIFEST } });
    expectStatus(`${reg.id} GET manifest`, res, 200);
    if (!res.body.equals(image.manifest)) throw new Error(`${reg.id} GET manifest: body differs from what was pushed`);
    res = await send(reg.url(MANIFEST), { method: 'HEAD', agent: reg.agent, headers: { accept: ACCEPT_MANIFEST } });
    expectStatus(`${reg.id} HEAD manifest`, res, 200);
    if (res.headers['docker-content-digest'] !== image.manifestDigest) throw new Error(`${reg.id} HEAD manifest: digest ${res.headers['docker-content-digest']}`);
  }
  const load = { threads: THREADS, connections: CONNECTIONS, seconds: SECONDS };
  await measure(ctx, GET, (reg) => rateRun(reg.url(MANIFEST).href, getScript, ACCEPT_MANIFEST, load));
  await measure(ctx, HEAD, (reg) => rateRun(reg.url(MANIFEST).href, 'HEAD', ACCEPT_MANIFEST, load));
}

module.exports = { group: 'manifest', run };
