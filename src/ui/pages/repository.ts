import type { ManifestRow, RepoRow, TagRow, V1TagRow } from '../../index/browse-index';
import { humanBytes, isIndexType, mediaTypeLabel, shortDigest, time } from '../format';
import { html, type Html } from '../html';
import { csrfField, link, page, repoPath, type View } from '../layout';

// A repository: pull commands, description, v2 and v1 tags, manifests no tag names.

export interface RepositoryData {
  repo: RepoRow;
  /** Registry host as clients name it (Host / X-Forwarded-Host). */
  host: string;
  tags: (TagRow & { platforms?: string[] })[];
  v1Tags: V1TagRow[];
  untagged: ManifestRow[];
  canPush: boolean;
  canDelete: boolean;
  notice?: string;
  limit: number;
}

let copyIds = 0;

/** A read-only command with a copy button (the button appears with JavaScript). */
export function copyable(label: string, text: string): Html {
  const id = `copy-${++copyIds}`;
  return html`<div class="pull"><label class="skip" for="${id}">${label}</label><input id="${id}" type="text" readonly value="${text}" aria-label="${label}"><button type="button" class="small" data-copy="${id}" hidden>Copy</button></div>`;
}

export function pullCommands(host: string, repo: string, ref: string): Html {
  const sep = ref.includes(':') ? '@' : ':';
  return html`${copyable('docker pull command', `docker pull ${host}/${repo}${sep}${ref}`)}${copyable('podman pull command', `podman pull ${host}/${repo}${sep}${ref}`)}`;
}

export function repositoryPage(view: View, d: RepositoryData): Html {
  const { repo } = d;
  const newest = d.tags[0]?.tag ?? d.v1Tags[0]?.tag;
  const del = (kind: string, ref: string, label: string) =>
    d.canDelete ? html`<a class="button small danger" href="${link(view, repoPath(repo.name, 'delete'), { kind, ref })}" aria-label="${label}">Delete</a>` : '';
  const tagRows = d.tags.map(
    (t) => html`<tr>
      <td class="name"><a href="${link(view, repoPath(repo.name, 'tag', t.tag))}">${t.tag}</a> ${
        t.bridged
          ? html`<span class="badge v2" title="the v1 tag of the same name, as v2 clients pull it (made by the bridge)">v2 API, from v1</span>`
          : html`<span class="badge v2" title="pushed over the OCI Distribution (v2) API">v2 API</span>`
      }</td>
      <td class="hide-narrow"><a href="${link(view, repoPath(repo.name, 'manifest', t.digest))}">${shortDigest(t.digest)}</a></td>
      <td>${mediaTypeLabel(t.mediaType)}${t.artifactType && !isIndexType(t.mediaType) && !/config/.test(t.artifactType) ? html`<div class="muted">${t.artifactType}</div>` : ''}${t.platforms?.length ? html`<div class="muted">${t.platforms.join(', ')}</div>` : ''}</td>
      <td class="num" title="${`${t.totalSize} bytes, compressed, every blob counted once`}">${humanBytes(t.totalSize)}</td>
      <td class="num hide-narrow">${time(t.createdAt)}</td>
      <td class="num">${time(t.updatedAt)}</td>
      <td class="num hide-narrow">${time(t.pulledAt, 'not recorded')}</td>
      <td class="actions">${del('tag', t.tag, `Delete tag ${t.tag}`)}</td>
    </tr>`,
  );
  const v1Rows = d.v1Tags.map(
    (t) => html`<tr>
      <td class="name"><a href="${link(view, repoPath(repo.name, 'v1', t.imageId))}">${t.tag}</a> <span class="badge v1" title="pushed over the Docker Registry v1 API">v1 API</span></td>
      <td><a href="${link(view, repoPath(repo.name, 'v1', t.imageId))}"><code title="${t.imageId}">${t.imageId.slice(0, 12)}</code></a></td>
      <td>v1 image, ${t.layers} ${t.layers === 1 ? 'layer' : 'layers'}</td>
      <td class="num">${humanBytes(t.totalSize)}</td>
      <td class="num">${time(t.createdAt)}</td>
      <td class="actions">${del('v1tag', t.tag, `Delete v1 tag ${t.tag}`)}</td>
    </tr>`,
  );
  const untaggedRows = d.untagged.map(
    (m) => html`<tr>
      <td><a href="${link(view, repoPath(repo.name, 'manifest', m.digest))}">${shortDigest(m.digest)}</a></td>
      <td>${mediaTypeLabel(m.mediaType)}</td>
      <td class="num">${humanBytes(m.size)}</td>
      <td class="num">${time(m.createdAt)}</td>
      <td class="actions">${del('manifest', m.digest, `Delete manifest ${m.digest}`)}</td>
    </tr>`,
  );
  const description = d.canPush
    ? html`<details class="card"><summary>${repo.description ? 'Edit the description' : 'Add a description'}</summary>
        <form method="post" action="${link(view, repoPath(repo.name, 'description'))}">
          ${csrfField(view, `description:${repo.name}`)}
          <label class="skip" for="description">Description</label>
          <textarea id="description" name="description" maxlength="4000">${repo.description}</textarea>
          <p><button type="submit">Save description</button> <span class="muted">Shown here and searched by <code>docker search</code> (v1).</span></p>
        </form></details>`
    : '';
  const body = html`
<div class="crumbs"><a href="${link(view, '/')}">Repositories</a> /</div>
<h1>${repo.name}</h1>
${repo.description ? html`<p class="desc">${repo.description}</p>` : ''}
${d.notice ? html`<div class="notice ok" role="status">${d.notice}</div>` : ''}
<p class="muted">${d.tags.length + d.v1Tags.length} ${d.tags.length + d.v1Tags.length === 1 ? 'tag' : 'tags'} · ${humanBytes(repo.bytes)} stored · last push ${time(repo.pushedAt)}</p>
${newest ? html`<h2>Pull</h2>${pullCommands(d.host, repo.name, newest)}` : ''}
${description}
<h2>Tags</h2>
${
  d.tags.length === 0 && d.v1Tags.length === 0
    ? html`<div class="notice">No tags.</div>`
    : ''
}
${
  d.tags.length
    ? html`<div class="table-wrap"><table>
  <thead><tr><th>Tag</th><th class="hide-narrow">Digest</th><th>Type</th><th class="num">Size</th><th class="num hide-narrow" title="when this manifest was first pushed here">First pushed</th><th class="num" title="when the tag was last set">Tagged</th><th class="num hide-narrow" title="last pull by this tag or digest (recorded while a retention policy uses pull times)">Pulled</th><th><span class="skip">Actions</span></th></tr></thead>
  <tbody>${tagRows}</tbody></table></div>
  ${d.tags.length >= d.limit ? html`<p class="muted">Showing the ${d.limit} most recently pushed tags.</p>` : ''}`
    : ''
}
${
  d.v1Tags.length
    ? html`<h3>v1 tags</h3><div class="table-wrap"><table>
  <thead><tr><th>Tag</th><th>Image</th><th>Type</th><th class="num">Size</th><th class="num">Pushed</th><th><span class="skip">Actions</span></th></tr></thead>
  <tbody>${v1Rows}</tbody></table></div>`
    : ''
}
${
  d.untagged.length
    ? html`<h2>Untagged manifests</h2><p class="muted">Pushed by digest, or left when their tag moved. ${''}They stay until deleted (or collected, with <code>gc.untagged: delete</code>).</p>
  <div class="table-wrap"><table><thead><tr><th>Digest</th><th>Type</th><th class="num">Size</th><th class="num">Pushed</th><th><span class="skip">Actions</span></th></tr></thead>
  <tbody>${untaggedRows}</tbody></table></div>`
    : ''
}`;
  return page(view, repo.name, body);
}
