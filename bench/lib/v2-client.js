'use strict';
// The client side of the v2 (OCI distribution) calls the side-by-side rows and the client ceiling make:
// blob uploads (monolithic and chunked), blob HEAD. `reg` is anything with { id, base, url(path), agent }.

const { send, expectStatus } = require('./http');

/** The Accept header of a manifest GET/HEAD: every manifest type either registry serves. */
const ACCEPT_MANIFEST = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** Upload URL with ?digest= appended, keeping whatever state the registry put in the query (Go: _state). */
function withDigest(location, digest) {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

async function startUpload(reg, repo, agent) {
  const res = await send(reg.url(`/v2/${repo}/blobs/uploads/`), { method: 'POST', agent, headers: { 'content-length': '0' } });
  expectStatus(`${reg.id} POST uploads`, res, 202);
  if (!res.headers.location) throw new Error(`${reg.id} POST uploads: no Location`);
  return new URL(res.headers.location, reg.base).href;
}

/** POST, then PUT ?digest= with the whole body (Content-Length). */
async function pushMonolithic(reg, repo, blob, agent = reg.agent) {
  const location = await startUpload(reg, repo, agent);
  const res = await send(withDigest(location, blob.digest), {
    method: 'PUT',
    agent,
    chunks: blob.chunks,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.bytes) },
  });
  expectStatus(`${reg.id} PUT (monolithic)`, res, 201);
  if (res.headers['docker-content-digest'] && res.headers['docker-content-digest'] !== blob.digest) {
    throw new Error(`${reg.id} PUT: Docker-Content-Digest ${res.headers['docker-content-digest']}, expected ${blob.digest}`);
  }
}

/** POST, one streamed PATCH (chunked transfer encoding, as docker and skopeo send it), PUT ?digest= without a body. */
async function pushChunked(reg, repo, blob, agent = reg.agent) {
  const location = await startUpload(reg, repo, agent);
  let res = await send(location, {
    method: 'PATCH',
    agent,
    chunks: blob.chunks,
    headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
  });
  expectStatus(`${reg.id} PATCH`, res, 202);
  const next = new URL(res.headers.location ?? location, reg.base).href;
  res = await send(withDigest(next, blob.digest), { method: 'PUT', agent, headers: { 'content-length': '0' } });
  expectStatus(`${reg.id} PUT (after PATCH)`, res, 201);
}

async function headBlob(reg, repo, digest) {
  const res = await send(reg.url(`/v2/${repo}/blobs/${digest}`), { method: 'HEAD', agent: reg.agent });
  expectStatus(`${reg.id} HEAD blob`, res, 200);
  return Number(res.headers['content-length']);
}

module.exports = { ACCEPT_MANIFEST, pushMonolithic, pushChunked, headBlob };
