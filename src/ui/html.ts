// The one escaping helper of the UI. Templates are tagged `html`...``: every interpolated value is escaped
// unless it is already Html (the result of another html`` or of raw() on text known to be markup).
// Arrays are joined, null/undefined/false render nothing. Nothing else in src/ui writes markup.

export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Text -> HTML text or attribute value (quoted attributes only: every template quotes them). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

export type Fragment = Html | string | number | boolean | null | undefined | readonly Fragment[];

function render(value: Fragment): string {
  if (value === null || value === undefined || value === false || value === true) return '';
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: Fragment[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** Markup the caller vouches for (constants only: never data). */
export function raw(markup: string): Html {
  return new Html(markup);
}

/** A URL for an href/action: only same-site paths and http(s) URLs; anything else (javascript:, data:) becomes '#'. */
export function safeUrl(url: string): string {
  return /^(\/(?!\/)|https?:\/\/)/i.test(url) ? url : '#';
}
