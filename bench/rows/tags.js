'use strict';
// Row 6: tags/list requests per second (wrk) at BENCH_CONNECTIONS connections on a repository with
// BENCH_TAGS tags.

const path = require('node:path');
const { measure } = require('../lib/ab');
const { send, expectStatus } = require('../lib/http');
const { rateRun, wrkScript } = require('../lib/load');
const { smallImage, pushSmallImage } = require('../lib/oci-image');
const { CONNECTIONS, THREADS, SECONDS, TAGS } = require('../lib/options');

const DEF = { id: 'tags', group: 'tags', title: `6. tags/list (${TAGS} tags), ${CONNECTIONS} connections`, unit: 'req/s', better: 'higher' };
const TAGS_LIST = '/v2/bench/tags/tags/list';

async function run(ctx) {
  const image = smallImage();
  const tagNames = Array.from({ length: TAGS }, (_, i) => `t${String(i).padStart(4, '0')}`);
  for (const reg of ctx.regs) await pushSmallImage(reg, 'bench/tags', image, tagNames);
  const script = wrkScript(path.join(ctx.tmp, 'tags.lua'), 'GET', null);
  for (const reg of ctx.regs) {
    // Check once what wrk will hammer: a wrong answer would be measured just as fast.
    const res = await send(reg.url(TAGS_LIST), { agent: reg.agent });
    expectStatus(`${reg.id} GET tags/list`, res, 200);
    const tags = JSON.parse(res.body.toString('utf8')).tags;
    if (!Array.isArray(tags) || tags.length !== TAGS) throw new Error(`${reg.id} tags/list: ${tags?.length} tags, expected ${TAGS}`);
  }
  const load = { threads: THREADS, connections: CONNECTIONS, seconds: SECONDS };
  await measure(ctx, DEF, (reg) => rateRun(reg.url(TAGS_LIST).href, script, null, load));
}

module.exports = { group: 'tags', run };
