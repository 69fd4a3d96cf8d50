import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';

// Fixtures and client steps for the Docker 1.x v1 flows (v1-protocol.md 6.2 and 6.3).

export interface V1Image {
  id: string;
  parent?: string;
  /** Image JSON exactly as the client sends it. */
  json: Buffer;
  /** gzip-compressed tar, as Docker 1.x sends layers. */
  layer: Buffer;
  /** "sha256:" + sha256(json + "\n" + layer) */
  checksum: string;
}

/** A minimal ustar archive holding one regular file (or nothing: an empty archive). */
export function tarOf(files: { name: string; data: Buffer }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const f of files) {
    const h = Buffer.alloc(512);
    h.write(f.name, 0, 100, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(f.data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('14000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0' + '00', 257);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, f.data, Buffer.alloc((512 - (f.data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export function payloadChecksum(json: Buffer, layer: Buffer): string {
  return 'sha256:' + createHash('sha256').update(json).update('\n').update(layer).digest('hex');
}

/** How a layer of imageChain is made: a gzip tar (Docker 1.x), an uncompressed tar, a gzip of an empty tar, random bytes. */
export type LayerKind = 'gzip' | 'tar' | 'empty' | 'random';

/**
 * A chain of `n` images, root first; `emptyAt` gets an empty (but valid gzip tar) layer; `kinds[i]` says how
 * image i's layer is made (default gzip). `files[i]` are the files image i's layer holds (none if empty).
 */
export function imageChain(n = 3, opts: { emptyAt?: number; layerBytes?: number; kinds?: LayerKind[] } = {}): V1Image[] {
  const chain: V1Image[] = [];
  for (let i = 0; i < n; i++) {
    const id = randomBytes(32).toString('hex');
    const parent = chain[i - 1]?.id;
    // Key order and spacing as a client wrote them: the server must keep these exact bytes.
    const json = Buffer.from(
      JSON.stringify({ id, ...(parent ? { parent } : {}), created: '2015-01-01T00:00:00Z', container_config: { Cmd: ['/bin/sh', `-c #${i}`] }, architecture: 'amd64', os: 'linux', Size: 0 }, null, i === 1 ? 2 : 0),
    );
    const kind = opts.kinds?.[i] ?? (i === opts.emptyAt ? 'empty' : 'gzip');
    const files = kind === 'empty' ? [] : [{ name: `file${i}.bin`, data: randomBytes(opts.layerBytes ?? 4096 + i * 1000) }];
    const layer = kind === 'random' ? randomBytes(5000) : kind === 'tar' ? tarOf(files) : gzipSync(tarOf(files));
    chain.push({ id, parent, json, layer, checksum: payloadChecksum(json, layer) });
  }
  return chain;
}

export interface PushResult {
  /** Ids the client pushed (GET json was not 200). */
  pushed: string[];
  /** Ids the client skipped because the registry had them. */
  skipped: string[];
  token: string | null;
}

/** Push like Docker 1.x: index PUT, json/layer/checksum per image root first, tag PUT, final images PUT. */
export async function pushV1(base: string, repo: string, tag: string, chain: V1Image[], headers: Record<string, string> = {}): Promise<PushResult> {
  const ua = 'docker/1.5.0 go/go1.4.1 git-commit/a8a31ef kernel/3.13.0-24-generic os/linux arch/amd64';
  const list = chain.map((img, i) => (i === chain.length - 1 ? { id: img.id, Tag: tag } : { id: img.id }));
  let res = await fetch(`${base}/v1/repositories/${repo}/`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'x-docker-token': 'true', 'user-agent': ua, ...headers },
    body: JSON.stringify(list),
  });
  if (res.status !== 200 && res.status !== 201) throw new Error(`index PUT: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  if (!res.headers.get('x-docker-endpoints')) throw new Error('index PUT: no X-Docker-Endpoints');
  const token = res.headers.get('x-docker-token');
  const auth: Record<string, string> = token ? { authorization: `Token ${token}` } : {};
  const result: PushResult = { pushed: [], skipped: [], token };
  const endpoint = `http://${res.headers.get('x-docker-endpoints')}/v1`;

  for (const img of chain) {
    res = await fetch(`${endpoint}/images/${img.id}/json`, { headers: { ...auth, 'user-agent': ua } });
    await res.arrayBuffer();
    if (res.status === 200) {
      result.skipped.push(img.id);
      continue;
    }
    result.pushed.push(img.id);
    res = await fetch(`${endpoint}/images/${img.id}/json`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/json', 'user-agent': ua },
      body: img.json,
    });
    if (res.status !== 200) throw new Error(`PUT json ${img.id}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
    res = await fetch(`${endpoint}/images/${img.id}/layer`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream', 'user-agent': ua },
      // Docker 1.x streams the layer chunked.
      body: new Blob([img.layer]).stream(),
      duplex: 'half',
    } as RequestInit);
    if (res.status !== 200) throw new Error(`PUT layer ${img.id}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
    res = await fetch(`${endpoint}/images/${img.id}/checksum`, {
      method: 'PUT',
      headers: { ...auth, 'x-docker-checksum': 'tarsum+sha256:unused', 'x-docker-checksum-payload': img.checksum, 'user-agent': ua },
    });
    if (res.status !== 200) throw new Error(`PUT checksum ${img.id}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  }
  const top = chain[chain.length - 1]!;
  res = await fetch(`${endpoint}/repositories/${repo}/tags/${tag}`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/json', 'user-agent': ua },
    body: JSON.stringify(top.id),
  });
  if (res.status !== 200 && res.status !== 201) throw new Error(`PUT tag: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  res = await fetch(`${base}/v1/repositories/${repo}/images`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'x-docker-token': 'true', 'x-docker-endpoints': endpoint + '/', 'user-agent': ua, ...headers },
    body: '[]',
  });
  if (res.status !== 204) throw new Error(`final images PUT: ${res.status} ${await res.text()}`);
  return result;
}

export interface PulledImage {
  id: string;
  json: Buffer;
  layer: Buffer;
  size: number;
}

/** Pull like Docker 1.x: GET images (token), tags, ancestry, then json + layer per image root first. `headers` go to the index call. */
export async function pullV1(base: string, repo: string, tag: string, headers: Record<string, string> = {}): Promise<PulledImage[]> {
  let res = await fetch(`${base}/v1/repositories/${repo}/images`, { headers: { 'x-docker-token': 'true', ...headers } });
  if (res.status !== 200) throw new Error(`GET images: ${res.status} ${await res.text()}`);
  await res.json();
  const token = res.headers.get('x-docker-token');
  const auth: Record<string, string> = token ? { authorization: `Token ${token}` } : {};
  const endpoint = `http://${res.headers.get('x-docker-endpoints') ?? new URL(base).host}/v1`;
  const qualified = repo.includes('/') ? repo : `library/${repo}`;
  res = await fetch(`${endpoint}/repositories/${qualified}/tags`, { headers: auth });
  if (res.status !== 200) throw new Error(`GET tags: ${res.status}`);
  const tags = (await res.json()) as Record<string, string>;
  const top = tags[tag];
  if (!top) throw new Error(`tag ${tag} not in ${JSON.stringify(tags)}`);
  res = await fetch(`${endpoint}/images/${top}/ancestry`, { headers: auth });
  if (res.status !== 200) throw new Error(`GET ancestry: ${res.status}`);
  const ancestry = (await res.json()) as string[];
  const out: PulledImage[] = [];
  for (const id of [...ancestry].reverse()) {
    res = await fetch(`${endpoint}/images/${id}/json`, { headers: auth });
    if (res.status !== 200) throw new Error(`GET json ${id}: ${res.status}`);
    const json = Buffer.from(await res.arrayBuffer());
    const size = Number(res.headers.get('x-docker-size'));
    res = await fetch(`${endpoint}/images/${id}/layer`, { headers: auth });
    if (res.status !== 200) throw new Error(`GET layer ${id}: ${res.status}`);
    out.push({ id, json, layer: Buffer.from(await res.arrayBuffer()), size });
  }
  return out;
}
