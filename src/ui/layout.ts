import { CSS_NAME, JS_NAME } from './assets';
import { html, type Fragment, type Html } from './html';

// The page shell: header with navigation and who is logged in, the main content, the two static files.

export interface View {
  /** ui.pathPrefix, e.g. "/ui" (links are built from it). */
  prefix: string;
  /** null: anonymous. */
  user: string | null;
  /** Whether the registry has users at all (without htpasswd there is no login). */
  loginEnabled: boolean;
  /** No authentication at all: everyone may do everything. */
  open: boolean;
  /** A CSRF token for `action` bound to this visitor's session. */
  csrf(action: string): string;
  /** The current path (for the nav's aria-current and the login redirect). */
  path: string;
}

/** Path of a UI page: prefix + segments, each segment percent-encoded except the slashes of repository names. */
export function link(view: Pick<View, 'prefix'>, path: string, query?: Record<string, string | undefined>): string {
  const qs = query ? new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')).toString() : '';
  return `${view.prefix}${path}${qs ? `?${qs}` : ''}`;
}

/** /r/<repo>[/-/<what>/<ref>], each component percent-encoded but for the colon of digests. */
export function repoPath(repo: string, ...rest: string[]): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%3A/g, ':'); // digests read better with their colon
  return `/r/${repo.split('/').map(enc).join('/')}${rest.length ? '/-/' + rest.map(enc).join('/') : ''}`;
}

export function csrfField(view: View, action: string): Html {
  return html`<input type="hidden" name="csrf" value="${view.csrf(action)}">`;
}

export function page(view: View, title: string, body: Fragment, opts: { nav?: 'repos' | 'storage' | 'login' } = {}): Html {
  const nav = (id: 'repos' | 'storage', href: string, label: string) =>
    html`<a href="${link(view, href)}"${opts.nav === id ? html` aria-current="page"` : ''}>${label}</a>`;
  const who =
    view.user !== null
      ? html`<span>Signed in as <b>${view.user}</b></span>
          <form method="post" action="${link(view, '/logout')}">${csrfField(view, 'logout')}<button type="submit" class="small">Sign out</button></form>`
      : view.loginEnabled
        ? html`<span>Anonymous</span> <a class="button small" href="${link(view, '/login', { next: view.path })}">Sign in</a>`
        : view.open
          ? html`<span title="auth.htpasswd.path is not set">No authentication configured</span>`
          : html`<span title="only tokens of the external issuer name users; the UI has no sign-in without htpasswd users">Anonymous</span>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${title} · Registry</title>
<link rel="stylesheet" href="${link(view, `/static/${CSS_NAME}`)}">
<script src="${link(view, `/static/${JS_NAME}`)}" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="${link(view, '/')}">Registry</a>
  <nav aria-label="Main">${nav('repos', '/', 'Repositories')} ${nav('storage', '/storage', 'Storage')}</nav>
  <div class="who">${who}</div>
</header>
<main id="main">
${body}
</main>
</body>
</html>
`;
}
