import { html, type Html } from './html';

// Human units for sizes and times. Times are relative ("3 hours ago") with the exact UTC time in a
// <time> element's title (on hover) and datetime attribute.

export function humanBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function relativeTime(ms: number, now = Date.now()): string {
  const s = Math.round((now - ms) / 1000);
  const future = s < 0;
  const a = Math.abs(s);
  const [n, unit] =
    a < 45 ? [0, ''] : a < 3600 ? [Math.round(a / 60), 'minute'] : a < 86400 ? [Math.round(a / 3600), 'hour'] : a < 86400 * 45 ? [Math.round(a / 86400), 'day'] : a < 86400 * 365 ? [Math.round(a / (86400 * 30)), 'month'] : [Math.round(a / (86400 * 365)), 'year'];
  if (unit === '') return 'just now';
  const text = `${n || 1} ${unit}${(n || 1) === 1 ? '' : 's'}`;
  return future ? `in ${text}` : `${text} ago`;
}

export function exactTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** A time as a <time> element: relative text, exact time on hover. */
export function time(ms: number | null | undefined, none = 'never'): Html {
  if (!ms) return html`<span class="muted">${none}</span>`;
  return html`<time datetime="${new Date(ms).toISOString()}" title="${exactTime(ms)}">${relativeTime(ms)}</time>`;
}

/** sha256:0123456789ab… (the full digest on hover). */
export function shortDigest(digest: string): Html {
  const [algo, hex] = digest.includes(':') ? digest.split(':', 2) : ['', digest];
  return html`<code class="digest" title="${digest}">${algo ? `${algo}:` : ''}${hex!.slice(0, 12)}</code>`;
}

/** application/vnd.oci.image.manifest.v1+json -> OCI manifest, with the full type on hover. */
export function mediaTypeLabel(type: string | null | undefined): Html {
  if (!type) return html`<span class="muted">–</span>`;
  const known: Record<string, string> = {
    'application/vnd.oci.image.manifest.v1+json': 'OCI manifest',
    'application/vnd.oci.image.index.v1+json': 'OCI index',
    'application/vnd.docker.distribution.manifest.v2+json': 'Docker manifest v2',
    'application/vnd.docker.distribution.manifest.list.v2+json': 'Docker manifest list',
    'application/vnd.docker.distribution.manifest.v1+json': 'Docker schema 1',
    'application/vnd.docker.distribution.manifest.v1+prettyjws': 'Docker schema 1 (signed)',
    'application/vnd.oci.image.layer.v1.tar+gzip': 'OCI layer (gzip)',
    'application/vnd.oci.image.layer.v1.tar+zstd': 'OCI layer (zstd)',
    'application/vnd.oci.image.layer.v1.tar': 'OCI layer (tar)',
    'application/vnd.docker.image.rootfs.diff.tar.gzip': 'Docker layer (gzip)',
    'application/vnd.oci.image.config.v1+json': 'OCI config',
    'application/vnd.docker.container.image.v1+json': 'Docker config',
    'application/vnd.oci.empty.v1+json': 'empty',
  };
  return html`<span title="${type}">${known[type] ?? type}</span>`;
}

export const isIndexType = (t: string) =>
  t === 'application/vnd.oci.image.index.v1+json' || t === 'application/vnd.docker.distribution.manifest.list.v2+json';
