import { createHash } from 'node:crypto';

// The UI's only static files: one stylesheet, one script. They are strings compiled into the package (no
// file to copy next to dist/, no CDN, no web fonts) and served under a name carrying their hash, so they can
// be cached for ever. The pages work without the script: it adds copy buttons and a last confirmation.

export const CSS = `
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1b1f24; --muted: #5b6470; --line: #d8dee4; --soft: #f4f6f8; --accent: #0b5cad;
  --danger: #b42318; --danger-bg: #fdecea; --ok: #146c2e; --ok-bg: #e7f5ec; --code: #f1f3f5; --focus: #2f81f7;
  --font: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1216; --fg: #e6e9ed; --muted: #9aa4af; --line: #2b323b; --soft: #171b21; --accent: #6cb0ff;
    --danger: #ff8a80; --danger-bg: #3a1715; --ok: #7ee2a0; --ok-bg: #13301f; --code: #1b2027; --focus: #6cb0ff;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 15px/1.5 var(--font); overflow-wrap: break-word; }
.notice, .card, h1, h2, p, li { overflow-wrap: anywhere; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
:focus-visible { outline: 2px solid var(--focus); outline-offset: 2px; border-radius: 3px; }
code, pre, .mono { font-family: var(--mono); font-size: 13px; }
code { background: var(--code); padding: 1px 4px; border-radius: 4px; overflow-wrap: anywhere; }
code.digest { white-space: nowrap; overflow-wrap: normal; }
pre { background: var(--code); padding: 12px; border-radius: 6px; overflow: auto; max-height: 70vh; margin: 0; }
pre code { background: none; padding: 0; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 8px; top: 8px; background: var(--bg); padding: 6px 10px; z-index: 10; }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 20px; padding: 10px 20px; border-bottom: 1px solid var(--line); background: var(--soft); }
header.top .brand { font-weight: 650; color: var(--fg); }
header.top nav { display: flex; gap: 14px; flex-wrap: wrap; }
header.top nav a[aria-current="page"] { color: var(--fg); font-weight: 600; }
header.top .who { margin-left: auto; display: flex; align-items: center; gap: 10px; color: var(--muted); }
header.top .who form { margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 20px; }
h1 { font-size: 22px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 17px; margin: 28px 0 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
p { margin: 8px 0; }
.muted { color: var(--muted); }
.crumbs { color: var(--muted); margin-bottom: 6px; overflow-wrap: anywhere; }
.crumbs a { color: var(--muted); }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 8px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
tr:last-child td { border-bottom: none; }
th { font-weight: 600; color: var(--muted); background: var(--soft); white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.name { overflow-wrap: anywhere; min-width: 12ch; }
.badge { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 12px; border: 1px solid var(--line); color: var(--muted); white-space: nowrap; }
.badge.v1 { border-color: #b7791f; color: #b7791f; }
.badge.v2 { border-color: var(--accent); color: var(--accent); }
.toolbar { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 12px 0; }
.toolbar input[type="search"] { flex: 1 1 220px; min-width: 0; }
input, textarea, select, button, .button { font: inherit; color: inherit; }
input[type="search"], input[type="text"], input[type="password"], textarea, select {
  background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 7px 9px; max-width: 100%;
}
textarea { width: 100%; min-height: 5em; }
button, .button { display: inline-block; background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; cursor: pointer; color: var(--fg); }
button:hover, .button:hover { border-color: var(--accent); text-decoration: none; }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--bg); }
button.danger, .button.danger { color: var(--danger); border-color: var(--danger); background: transparent; }
button.danger.solid { background: var(--danger); color: var(--bg); }
button.small, .button.small { padding: 1px 8px; font-size: 13px; }
.sort a[aria-current="true"] { font-weight: 600; color: var(--fg); }
.pager { display: flex; gap: 10px; justify-content: space-between; align-items: center; margin: 12px 0; flex-wrap: wrap; }
.pull { display: flex; gap: 6px; align-items: center; margin: 4px 0; }
.pull button { flex: none; }
.pull input { flex: 1 1 auto; font-family: var(--mono); font-size: 13px; background: var(--code); border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; min-width: 0; }
.notice { padding: 10px 12px; border-radius: 6px; border: 1px solid var(--line); background: var(--soft); margin: 12px 0; }
.notice.error { border-color: var(--danger); background: var(--danger-bg); }
.notice.ok { border-color: var(--ok); background: var(--ok-bg); }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 16px; margin: 12px 0; }
.login { max-width: 380px; margin: 40px auto; }
.login label, .field label { display: block; margin: 10px 0 4px; font-weight: 600; }
.login input { width: 100%; }
.login button { margin-top: 14px; width: 100%; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
details > summary { cursor: pointer; margin: 8px 0; }
.tabs { display: flex; gap: 6px; margin: 10px 0; }
.stat { display: inline-block; margin-right: 24px; }
.stat b { display: block; font-size: 20px; }
.hist { white-space: pre-wrap; overflow-wrap: anywhere; }
.actions { white-space: nowrap; }
.actions form { display: inline; }
[hidden] { display: none !important; }
@media (max-width: 640px) {
  body { font-size: 14px; }
  main { padding: 12px; }
  header.top { padding: 8px 12px; }
  header.top .who { margin-left: 0; width: 100%; }
  th, td { padding: 6px 7px; }
  .hide-narrow { display: none; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dt { margin-top: 6px; }
}
`;

export const JS = `
'use strict';
(function () {
  function copy(text, button) {
    var done = function () { var old = button.textContent; button.textContent = 'Copied'; setTimeout(function () { button.textContent = old; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else { fallback(text); done(); }
  }
  function fallback(text) {
    var area = document.createElement('textarea');
    area.value = text; area.setAttribute('readonly', ''); area.className = 'skip';
    document.body.appendChild(area); area.select();
    try { document.execCommand('copy'); } catch (e) {}
    document.body.removeChild(area);
  }
  document.querySelectorAll('button[data-copy]').forEach(function (b) {
    b.hidden = false;
    b.addEventListener('click', function () {
      var source = document.getElementById(b.getAttribute('data-copy'));
      if (source) copy(source.value || source.textContent, b);
    });
  });
  document.querySelectorAll('form[data-confirm]').forEach(function (f) {
    f.addEventListener('submit', function (e) { if (!window.confirm(f.getAttribute('data-confirm'))) e.preventDefault(); });
  });
  document.querySelectorAll('select[data-autosubmit]').forEach(function (s) {
    s.addEventListener('change', function () { s.form.submit(); });
  });
})();
`;

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 12);
export const CSS_NAME = `ui.${hash(CSS)}.css`;
export const JS_NAME = `ui.${hash(JS)}.js`;
