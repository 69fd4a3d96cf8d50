import { humanBytes, isIndexType, mediaTypeLabel, shortDigest, time } from '../format';
import { html, type Fragment, type Html } from '../html';
import { link, page, repoPath, type View } from '../layout';
import { pullCommands } from './repository';

// An image: its manifest (pretty and raw), layers, config (env, entrypoint, labels, history), referrers;
// for an index, one row per platform. And v1 images with their ancestry.

type Json = Record<string, unknown>;

export interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  artifactType?: string;
  platform?: { os?: string; architecture?: string; variant?: string; 'os.version'?: string };
  annotations?: Record<string, string>;
}

export interface ImageData {
  repo: string;
  host: string;
  digest: string;
  /** The tag the page was opened by, if any. */
  tag?: string;
  mediaType: string;
  size: number;
  createdAt?: number;
  pulledAt?: number | null;
  tags: string[];
  parents: string[];
  /** The manifest bytes (undefined: larger than the display cap). */
  raw?: string;
  manifest?: Json;
  /** Sizes of blobs named by the manifest, from the index. */
  sizes: Map<string, number>;
  /** For an index: the compressed size of each platform's image (every blob it reaches once). */
  childSizes?: Map<string, number>;
  config?: Json;
  configNote?: string;
  referrers: Descriptor[];
  canDelete: boolean;
  cap: number;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});

export function platformOf(d: Descriptor): string {
  const p = d.platform;
  if (!p) return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ? 'attestation' : 'unknown';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/') + (p['os.version'] ? ` (${p['os.version']})` : '');
}

function annotationsTable(a: unknown): Fragment {
  const entries = Object.entries(obj(a));
  if (!entries.length) return '';
  return html`<dl class="facts">${entries.map(([k, v]) => html`<dt>${k}</dt><dd>${String(v)}</dd>`)}</dl>`;
}

function facts(d: ImageData, view: View): Html {
  return html`<dl class="facts">
  <dt>Digest</dt><dd><code>${d.digest}</code></dd>
  <dt>Media type</dt><dd>${mediaTypeLabel(d.mediaType)} <span class="muted">${d.mediaType}</span></dd>
  <dt>Manifest size</dt><dd>${humanBytes(d.size)}</dd>
  ${d.createdAt ? html`<dt>Pushed</dt><dd>${time(d.createdAt)}</dd>` : ''}
  ${d.pulledAt !== undefined ? html`<dt>Last pulled</dt><dd>${time(d.pulledAt, 'not recorded')}</dd>` : ''}
  <dt>Tags</dt><dd>${d.tags.length ? d.tags.map((t, i) => html`${i ? ', ' : ''}<a href="${link(view, repoPath(d.repo, 'tag', t))}">${t}</a>`) : html`<span class="muted">none</span>`}</dd>
  ${d.parents.length ? html`<dt>In index</dt><dd>${d.parents.map((p, i) => html`${i ? ', ' : ''}<a href="${link(view, repoPath(d.repo, 'manifest', p))}">${shortDigest(p)}</a>`)}</dd>` : ''}
</dl>`;
}

function platforms(d: ImageData, view: View): Fragment {
  const list = arr(d.manifest?.manifests).map((m) => m as Descriptor);
  if (!list.length) return html`<div class="notice">This index lists no manifests.</div>`;
  return html`<h2>Platforms</h2><div class="table-wrap"><table>
<thead><tr><th>Platform</th><th>Digest</th><th>Type</th><th class="num" title="compressed: layers, config and manifest">Size</th></tr></thead>
<tbody>${list.map(
    (m) => html`<tr><td>${platformOf(m)}</td>
      <td>${m.digest ? html`<a href="${link(view, repoPath(d.repo, 'manifest', String(m.digest)))}">${shortDigest(String(m.digest))}</a>` : '–'}</td>
      <td>${mediaTypeLabel(m.mediaType)}${m.artifactType ? html`<div class="muted">${m.artifactType}</div>` : ''}</td>
      <td class="num" data-bytes="${String(d.childSizes?.get(String(m.digest)) ?? '')}">${humanBytes(d.childSizes?.get(String(m.digest)) ?? null)}</td></tr>`,
  )}</tbody></table></div>`;
}

function layers(d: ImageData): Fragment {
  const list = arr(d.manifest?.layers).map((l) => l as Descriptor);
  if (!list.length) return '';
  const total = list.reduce((n, l) => n + (typeof l.size === 'number' ? l.size : 0), 0);
  return html`<h2>Layers</h2><div class="table-wrap"><table class="layers">
<thead><tr><th class="num">#</th><th>Digest</th><th>Media type</th><th class="num">Size</th></tr></thead>
<tbody>${list.map(
    (l, i) => html`<tr><td class="num">${i + 1}</td><td>${shortDigest(String(l.digest ?? ''))}</td><td>${mediaTypeLabel(l.mediaType)}</td>
      <td class="num" data-bytes="${String(l.size ?? '')}" title="${`${l.size ?? '?'} bytes`}">${humanBytes(typeof l.size === 'number' ? l.size : (d.sizes.get(String(l.digest)) ?? null))}</td></tr>`,
  )}</tbody>
<tfoot><tr><th></th><th colspan="2">${list.length} ${list.length === 1 ? 'layer' : 'layers'}, compressed</th><th class="num">${humanBytes(total)}</th></tr></tfoot></table></div>`;
}

function configSection(d: ImageData): Fragment {
  if (d.configNote) return html`<h2>Configuration</h2><div class="notice">${d.configNote}</div>`;
  if (!d.config) return '';
  const c = d.config;
  const cc = obj(c.config);
  const list = (v: unknown) => arr(v).map(String);
  const cmd = (v: unknown) => (Array.isArray(v) ? html`<code>${JSON.stringify(v)}</code>` : html`<span class="muted">–</span>`);
  const env = list(cc.Env);
  const labels = Object.entries(obj(cc.Labels));
  const history = arr(c.history).map(obj);
  const layerList = arr(d.manifest?.layers).map((l) => l as Descriptor);
  let layerIndex = 0;
  const historyRows = history.map((h) => {
    const empty = h.empty_layer === true;
    const layer = empty ? undefined : layerList[layerIndex++];
    return html`<tr><td class="num">${str(h.created) ? time(Date.parse(String(h.created)), '–') : '–'}</td>
      <td class="hist"><code>${str(h.created_by) ?? ''}</code>${str(h.comment) ? html`<div class="muted">${String(h.comment)}</div>` : ''}</td>
      <td class="num">${empty ? html`<span class="muted">no layer</span>` : humanBytes(typeof layer?.size === 'number' ? layer.size : null)}</td></tr>`;
  });
  return html`<h2>Configuration</h2>
<dl class="facts">
  <dt>Platform</dt><dd>${[str(c.os), str(c.architecture), str(c.variant)].filter(Boolean).join('/') || '–'}</dd>
  ${str(c.created) ? html`<dt>Created</dt><dd>${time(Date.parse(String(c.created)), String(c.created))}</dd>` : ''}
  ${str(c.author) ? html`<dt>Author</dt><dd>${String(c.author)}</dd>` : ''}
  <dt>Entrypoint</dt><dd>${cmd(cc.Entrypoint)}</dd>
  <dt>Command</dt><dd>${cmd(cc.Cmd)}</dd>
  ${str(cc.WorkingDir) ? html`<dt>Working dir</dt><dd><code>${String(cc.WorkingDir)}</code></dd>` : ''}
  ${str(cc.User) ? html`<dt>User</dt><dd><code>${String(cc.User)}</code></dd>` : ''}
  ${Object.keys(obj(cc.ExposedPorts)).length ? html`<dt>Ports</dt><dd>${Object.keys(obj(cc.ExposedPorts)).join(', ')}</dd>` : ''}
</dl>
${env.length ? html`<h3>Environment</h3><pre><code>${env.join('\n')}</code></pre>` : ''}
${labels.length ? html`<h3>Labels</h3><dl class="facts labels">${labels.map(([k, v]) => html`<dt>${k}</dt><dd>${String(v)}</dd>`)}</dl>` : ''}
${
  history.length
    ? html`<h3>History</h3><div class="table-wrap"><table class="history"><thead><tr><th class="num">Created</th><th>Command</th><th class="num">Layer</th></tr></thead><tbody>${historyRows}</tbody></table></div>`
    : ''
}`;
}

function referrers(d: ImageData, view: View): Fragment {
  if (!d.referrers.length) return '';
  return html`<h2>Referrers</h2><p class="muted">Signatures, SBOMs, attestations and other artifacts attached to this manifest.</p>
<div class="table-wrap"><table class="referrers"><thead><tr><th>Artifact type</th><th>Digest</th><th class="num">Size</th><th>Annotations</th></tr></thead><tbody>${d.referrers.map(
    (r) => html`<tr><td>${r.artifactType ?? html`<span class="muted">–</span>`}</td>
      <td><a href="${link(view, repoPath(d.repo, 'manifest', String(r.digest)))}">${shortDigest(String(r.digest))}</a></td>
      <td class="num">${humanBytes(r.size ?? null)}</td><td>${annotationsTable(r.annotations)}</td></tr>`,
  )}</tbody></table></div>`;
}

export function imagePage(view: View, d: ImageData): Html {
  const index = isIndexType(d.mediaType);
  const title = `${d.repo}${d.tag ? `:${d.tag}` : `@${d.digest.slice(0, 19)}`}`;
  const body = html`
<div class="crumbs"><a href="${link(view, '/')}">Repositories</a> / <a href="${link(view, repoPath(d.repo))}">${d.repo}</a> /</div>
<h1>${d.tag ? html`${d.repo}:<wbr>${d.tag}` : html`${d.repo}@<wbr>${shortDigest(d.digest)}`}</h1>
${index ? html`<p class="muted">Multi-platform index: clients pull the entry of their platform.</p>` : ''}
${facts(d, view)}
<h2>Pull</h2>
${pullCommands(d.host, d.repo, d.tag ?? d.digest)}
${d.tag ? html`<p class="muted">By digest (never moves):</p>${pullCommands(d.host, d.repo, d.digest)}` : ''}
${index ? platforms(d, view) : html`${layers(d)}${configSection(d)}`}
${referrers(d, view)}
${d.manifest && Object.keys(obj(d.manifest.annotations)).length ? html`<h2>Annotations</h2>${annotationsTable(d.manifest.annotations)}` : ''}
<h2>Manifest</h2>
${
  d.raw === undefined
    ? html`<div class="notice">The manifest is ${humanBytes(d.size)}, more than the ${humanBytes(d.cap)} the UI displays. Pull it with the API.</div>`
    : html`<pre class="manifest"><code>${d.manifest ? JSON.stringify(d.manifest, null, 2) : d.raw}</code></pre>
<details><summary>Raw (the exact bytes, ${d.size} bytes)</summary><pre class="raw"><code>${d.raw}</code></pre></details>`
}
${
  d.canDelete
    ? html`<h2>Delete</h2><p><a class="button danger" href="${link(view, repoPath(d.repo, 'delete'), { kind: 'manifest', ref: d.digest })}">Delete this manifest…</a>
      <span class="muted">(and its ${d.tags.length} ${d.tags.length === 1 ? 'tag' : 'tags'}; you confirm on the next page)</span></p>`
    : ''
}`;
  return page(view, title, body);
}

export interface V1ImageData {
  repo: string;
  host: string;
  id: string;
  tags: string[];
  json?: Json;
  rawJson?: string;
  ancestry: { id: string; layerSize: number | null; createdAt?: number; created?: string; cmd?: string }[];
  ancestryCut: boolean;
  canDelete: boolean;
}

export function v1ImagePage(view: View, d: V1ImageData): Html {
  const total = d.ancestry.reduce((n, a) => n + (a.layerSize ?? 0), 0);
  const body = html`
<div class="crumbs"><a href="${link(view, '/')}">Repositories</a> / <a href="${link(view, repoPath(d.repo))}">${d.repo}</a> /</div>
<h1>${d.repo} <span class="badge v1">v1 API image</span></h1>
<dl class="facts">
  <dt>Image id</dt><dd><code>${d.id}</code></dd>
  <dt>Tags</dt><dd>${d.tags.length ? d.tags.join(', ') : html`<span class="muted">none</span>`}</dd>
  ${d.json && str(d.json.created) ? html`<dt>Created</dt><dd>${time(Date.parse(String(d.json.created)), String(d.json.created))}</dd>` : ''}
  ${d.json ? html`<dt>Platform</dt><dd>${[str(d.json.os), str(d.json.architecture)].filter(Boolean).join('/') || '–'}</dd>` : ''}
  <dt>Size</dt><dd>${humanBytes(total)} <span class="muted">(compressed layers of the image and its ancestors)</span></dd>
</dl>
${d.tags[0] ? html`<h2>Pull</h2>${pullCommands(d.host, d.repo, d.tags[0])}` : ''}
<h2>Ancestry</h2>
<div class="table-wrap"><table class="ancestry"><thead><tr><th class="num">#</th><th>Image</th><th>Command</th><th class="num">Created</th><th class="num">Layer</th></tr></thead>
<tbody>${d.ancestry.map(
    (a, i) => html`<tr><td class="num">${i + 1}</td><td><a href="${link(view, repoPath(d.repo, 'v1', a.id))}"><code title="${a.id}">${a.id.slice(0, 12)}</code></a></td>
      <td class="hist">${a.cmd ? html`<code>${a.cmd}</code>` : html`<span class="muted">–</span>`}</td>
      <td class="num">${a.created ? time(Date.parse(a.created), a.created) : '–'}</td><td class="num" data-bytes="${String(a.layerSize ?? '')}">${humanBytes(a.layerSize)}</td></tr>`,
  )}</tbody></table></div>
${d.ancestryCut ? html`<p class="muted">Showing the first ${d.ancestry.length} images of the chain.</p>` : ''}
${d.rawJson !== undefined ? html`<h2>Image JSON</h2><pre><code>${d.json ? JSON.stringify(d.json, null, 2) : d.rawJson}</code></pre>` : ''}`;
  return page(view, `${d.repo} v1 ${d.id.slice(0, 12)}`, body);
}
