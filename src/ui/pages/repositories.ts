import type { RepoCursor, RepoPage, RepoSort } from '../../index/browse-index';
import { humanBytes, time } from '../format';
import { html, type Html } from '../html';
import { link, page, repoPath, type View } from '../layout';

// The repository list: search (the trigram index of v1 search), sort, keyset pages.

export const SORTS: Record<RepoSort, string> = { name: 'Name', pushed: 'Last push', size: 'Size' };

/** `after` in a URL: the name, or "<key>~<name>" for the sorts by a number. */
export function encodeCursor(c: RepoCursor): string {
  return c.key === undefined ? c.name : `${c.key}~${c.name}`;
}

export function decodeCursor(s: string | undefined, sort: RepoSort): RepoCursor | undefined {
  if (!s) return undefined;
  if (sort === 'name') return { name: s };
  const m = /^(-?\d+)~(.+)$/.exec(s);
  return m ? { key: Number(m[1]), name: m[2]! } : undefined;
}

export function repositoriesPage(view: View, p: { q: string; sort: RepoSort; result: RepoPage; first: boolean }): Html {
  const { q, sort, result } = p;
  const sortLinks = (Object.keys(SORTS) as RepoSort[]).map(
    (s, i) => html`${i ? ' · ' : ' '}<a href="${link(view, '/', { q, sort: s === 'name' ? undefined : s })}"${s === sort ? html` aria-current="true"` : ''}>${SORTS[s]}</a>`,
  );
  const rows = result.rows.map(
    (r) => html`<tr>
      <td class="name"><a href="${link(view, repoPath(r.name))}">${r.name}</a>${r.description ? html`<div class="muted">${r.description.slice(0, 200)}</div>` : ''}</td>
      <td class="num">${r.tags}</td>
      <td class="num" data-bytes="${r.bytes}">${humanBytes(r.bytes)}</td>
      <td class="num" data-pushed="${r.pushedAt}">${time(r.pushedAt)}</td>
    </tr>`,
  );
  const next = result.next ? link(view, '/', { q, sort: sort === 'name' ? undefined : sort, after: encodeCursor(result.next) }) : undefined;
  const body = html`
<h1>Repositories</h1>
<form class="toolbar" method="get" action="${link(view, '/')}" role="search">
  <label class="skip" for="q">Search repositories</label>
  <input type="search" id="q" name="q" value="${q}" placeholder="Search names and descriptions" maxlength="200">
  ${sort !== 'name' ? html`<input type="hidden" name="sort" value="${sort}">` : ''}
  <button type="submit">Search</button>
</form>
<p class="sort muted">${result.total} ${result.total === 1 ? 'repository' : 'repositories'}${q ? html` matching <b>${q}</b>` : ''} · sort by${sortLinks}</p>
${
  result.rows.length === 0
    ? html`<div class="notice">${q ? 'No repository you may see matches this search.' : view.user === null && view.loginEnabled ? 'No repository is public. Sign in to see yours.' : 'No repositories yet. Push an image to create one.'}</div>`
    : html`<div class="table-wrap"><table>
  <thead><tr><th>Name</th><th class="num">Tags</th><th class="num">Size</th><th class="num">Last push</th></tr></thead>
  <tbody>${rows}</tbody>
</table></div>`
}
<nav class="pager" aria-label="Pages">
  <span>${p.first ? '' : html`<a href="${link(view, '/', { q, sort: sort === 'name' ? undefined : sort })}">« First page</a>`}</span>
  <span>${next ? html`<a href="${next}" rel="next">Next page »</a>` : ''}</span>
</nav>`;
  return page(view, 'Repositories', body, { nav: 'repos' });
}
