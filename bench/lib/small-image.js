'use strict';
// A small, unique OCI image (config + one 4 KiB layer) and its push by monolithic POSTs and a tagged manifest
// PUT: the unit of the push-latency and push-throughput rows of bench/notifications.js and bench/postgres.js.

const { createHash, randomBytes } = require('node:crypto');

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const sha = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function smallImage() {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', r: randomBytes(8).toString('hex') }));
  const layer = randomBytes(4096);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
    }),
  );
  return { config, layer, manifest };
}

async function pushSmallImage(url, repo, tag, img) {
  for (const data of [img.config, img.layer]) {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha(data)}`, { method: 'POST', body: data });
    await res.arrayBuffer();
    if (res.status !== 201) throw new Error(`blob POST ${res.status}`);
  }
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: img.manifest, headers: { 'content-type': MANIFEST_TYPE } });
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`manifest PUT ${res.status}`);
}

/** The q-quantile of `xs` (nearest rank). */
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

module.exports = { MANIFEST_TYPE, sha, smallImage, pushSmallImage, quantile };
