import type { UsageRow } from '../../index/browse-index';
import type { QuotaStatus } from '../../quota/quotas';
import type { RetentionPolicy } from '../../retention/policy';
import { humanBytes } from '../format';
import { html, type Fragment, type Html } from '../html';
import { csrfField, link, page, repoPath, type View } from '../layout';

// Login, confirmation, error and storage pages.

export function loginPage(view: View, p: { next: string; user?: string; error?: string }): Html {
  const body = view.loginEnabled
    ? html`<div class="login card">
<h1>Sign in</h1>
<p class="muted">With your registry user name and password (as for <code>docker login</code>).</p>
${p.error ? html`<div class="notice error" role="alert">${p.error}</div>` : ''}
<form method="post" action="${link(view, '/login')}">
  <input type="hidden" name="next" value="${p.next}">
  <label for="username">User name</label>
  <input type="text" id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${p.user ?? ''}"${p.user ? '' : html` autofocus`}>
  <label for="password">Password</label>
  <input type="password" id="password" name="password" autocomplete="current-password" required${p.user ? html` autofocus` : ''}>
  <button type="submit" class="primary">Sign in</button>
</form></div>`
    : view.open
      ? html`<div class="notice">This registry has no users (auth.htpasswd.path is not set): everyone may do everything, no sign-in is needed.</div>`
      : html`<div class="notice">This registry has no htpasswd users (auth.htpasswd.path is not set), so the web UI has no sign-in: it shows what anonymous visitors may pull.</div>`;
  return page(view, 'Sign in', body, { nav: 'login' });
}

export interface Doomed {
  kind: 'tag' | 'manifest' | 'v1tag';
  ref: string;
  /** What goes, one line each. */
  goes: Fragment[];
  /** What stays, one line each. */
  stays: Fragment[];
  /** What garbage collection then frees. */
  note?: Fragment;
}

export function confirmPage(view: View, repo: string, d: Doomed): Html {
  const what = d.kind === 'tag' ? `tag ${d.ref}` : d.kind === 'v1tag' ? `v1 tag ${d.ref}` : `manifest ${d.ref}`;
  const body = html`
<div class="crumbs"><a href="${link(view, '/')}">Repositories</a> / <a href="${link(view, repoPath(repo))}">${repo}</a> /</div>
<h1>Delete ${what}?</h1>
<div class="card">
<p>In <b>${repo}</b>, this deletes:</p>
<ul class="goes">${d.goes.map((g) => html`<li>${g}</li>`)}</ul>
${d.stays.length ? html`<p>It leaves:</p><ul class="stays">${d.stays.map((s) => html`<li>${s}</li>`)}</ul>` : ''}
${d.note ? html`<p class="reclaim">${d.note}</p>` : ''}
<p class="muted">Pulls of what goes fail from now on. Bytes are freed by garbage collection (after gc.delay), once no other manifest or repository uses them.</p>
<form method="post" action="${link(view, repoPath(repo, 'delete'))}" data-confirm="${`Delete ${what} from ${repo}?`}">
  ${csrfField(view, deleteAction(repo, d.kind, d.ref))}
  <input type="hidden" name="kind" value="${d.kind}">
  <input type="hidden" name="ref" value="${d.ref}">
  <button type="submit" class="danger solid">Delete ${what}</button>
  <a class="button" href="${link(view, repoPath(repo))}">Cancel</a>
</form>
</div>`;
  return page(view, `Delete ${what}`, body);
}

/** The CSRF action of one deletion: a token is good for that target only. */
export function deleteAction(repo: string, kind: string, ref: string): string {
  return `delete:${repo}:${kind}:${ref}`;
}

export function errorPage(view: View, status: number, title: string, message: Fragment): Html {
  const body = html`<h1>${title}</h1><div class="notice${status >= 500 ? ' error' : ''}">${message}</div>
<p><a href="${link(view, '/')}">Back to the repositories</a>${view.user === null && view.loginEnabled && status === 404 ? html` · <a href="${link(view, '/login', { next: view.path })}">Sign in</a> (it may not be public)` : ''}</p>`;
  return page(view, title, body);
}

export interface StorageData {
  usage: { rows: UsageRow[]; repositories: number; bytes: number };
  /** Whole-registry figures: only for viewers who may pull every repository. */
  totals?: { repositories: number; blobs: number; bytes: number; uploads: number; uploadBytes: number; doomed: number };
  quotas?: QuotaStatus[];
  gc: { interval: number; delay: number; untagged: string };
  retention: { interval: number; dryRun: boolean; policies: RetentionPolicy[] };
}

const every = (s: number) => (s === 0 ? 'never in the background' : s % 3600 === 0 ? `every ${s / 3600} h` : s % 60 === 0 ? `every ${s / 60} min` : `every ${s} s`);

export function storagePage(view: View, d: StorageData): Html {
  const sorted = d.usage.rows;
  const body = html`
<h1>Storage</h1>
${
  d.totals
    ? html`<div class="card"><span class="stat"><b>${humanBytes(d.totals.bytes)}</b> in ${d.totals.blobs} blobs</span>
  <span class="stat"><b>${d.totals.repositories}</b> repositories</span>
  <span class="stat"><b>${d.totals.uploads}</b> uploads open (${humanBytes(d.totals.uploadBytes)})</span>
  ${d.totals.doomed ? html`<span class="stat"><b>${d.totals.doomed}</b> blobs being deleted by GC</span>` : ''}</div>`
    : html`<p class="muted">Figures of the repositories you may pull. Whole-registry totals are shown to users who may pull every repository.</p>`
}
<h2>Usage per repository</h2>
<p class="muted">Each blob counts once per repository that holds it; a blob shared by several repositories is stored once.</p>
${
  sorted.length
    ? html`<div class="table-wrap"><table class="usage"><thead><tr><th>Repository</th><th class="num">Size</th><th class="num">Blobs</th><th class="num hide-narrow">Shared</th><th class="num hide-narrow">Only here</th></tr></thead>
<tbody>${sorted.map(
        (u) => html`<tr><td class="name"><a href="${link(view, repoPath(u.repo))}">${u.repo}</a></td><td class="num">${humanBytes(u.bytes)}</td><td class="num">${u.blobs}</td>
          <td class="num hide-narrow">${humanBytes(u.sharedBytes)}</td><td class="num hide-narrow">${humanBytes(u.uniqueBytes)}</td></tr>`,
      )}</tbody>
<tfoot><tr><th>${d.usage.repositories} ${d.usage.repositories === 1 ? 'repository' : 'repositories'}${d.usage.repositories > sorted.length ? ` (the ${sorted.length} largest shown)` : ''}</th><th class="num">${humanBytes(d.usage.bytes)}</th><th></th><th class="hide-narrow"></th><th class="hide-narrow"></th></tr></tfoot></table></div>`
    : html`<div class="notice">No stored content you may see.</div>`
}
${
  d.quotas && d.quotas.length
    ? html`<h2>Quotas</h2><div class="table-wrap"><table><thead><tr><th>Repositories</th><th class="num">Used</th><th class="num">Limit</th><th class="num">%</th></tr></thead><tbody>${d.quotas.map(
        (q) => html`<tr><td><code>${q.repository}</code></td><td class="num">${humanBytes(q.used)}</td><td class="num">${humanBytes(q.limit)}</td><td class="num">${Math.round((100 * q.used) / q.limit)}%</td></tr>`,
      )}</tbody></table></div>`
    : ''
}
<h2>Garbage collection</h2>
<dl class="facts"><dt>Runs</dt><dd>${every(d.gc.interval)} (<code>npm run registry -- gc</code> runs one now)</dd>
<dt>Grace</dt><dd>${d.gc.delay} s before an unreferenced blob or untagged manifest may go</dd>
<dt>Untagged manifests</dt><dd>${d.gc.untagged === 'delete' ? 'deleted once older than the grace' : 'kept'}</dd></dl>
<h2>Retention</h2>
${
  d.retention.policies.length
    ? html`<dl class="facts"><dt>Runs</dt><dd>${every(d.retention.interval)}${d.retention.dryRun ? ' (dry run: only logs what it would delete)' : ''}</dd></dl>
<div class="table-wrap"><table><thead><tr><th>Repositories</th><th>Keeps</th></tr></thead><tbody>${d.retention.policies.map(
        (p) => html`<tr><td><code>${p.repository}</code></td><td>${[
          p.keepLast !== undefined ? `the newest ${p.keepLast} tags` : '',
          p.keepTags?.length ? `tags ${p.keepTags.join(', ')}` : '',
          p.deleteOlderThan !== undefined ? `tags pushed within ${p.deleteOlderThan} days` : '',
          p.keepPulledWithin !== undefined ? `tags pulled within ${p.keepPulledWithin} days` : '',
        ]
          .filter(Boolean)
          .join('; ') || 'nothing'}</td></tr>`,
      )}</tbody></table></div>`
    : html`<p class="muted">No retention policies: tags stay until deleted.</p>`
}`;
  return page(view, 'Storage', body, { nav: 'storage' });
}
