import { globProblem } from '../auth/globs';
import { parseDurationMs, parseDurationSeconds } from '../config/duration';
import { ConfigError } from '../config/errors';

// The notifications.* configuration keys (schema.ts): the endpoint list and durations. Parsed and checked once
// at start; every problem names the key it comes from (notifications.endpoints[1].timeout ...).

export const ACTIONS = ['push', 'pull', 'delete', 'mount'] as const;
export type Action = (typeof ACTIONS)[number];

export interface EndpointSettings {
  name: string;
  url: string;
  enabled: boolean;
  /** Sent with every POST (e.g. Authorization); never logged. */
  headers: Readonly<Record<string, string>>;
  /** Milliseconds one POST may take, connect to last byte of the answer. */
  timeoutMs: number;
  backoff: { initialMs: number; maxMs: number };
  /** Failed attempts after which an event is dropped (0: no limit, only notifications.maxAge drops). */
  maxRetries: number;
  /** Actions sent; undefined: all (pull only with notifications.pullEvents). */
  actions?: readonly Action[];
  /** Repository globs (`*` one path component, `**` any); events of other repositories are not sent. */
  repositories: readonly string[];
  /** Events whose target has one of these media types are not sent. */
  ignoreMediaTypes: readonly string[];
  /** Where the HMAC key is read at start (never the key itself: the config stays printable). */
  secretFile?: string;
  secretEnv?: string;
}

const KEYS = ['name', 'url', 'enabled', 'headers', 'timeout', 'backoff', 'maxRetries', 'actions', 'repositories', 'ignoreMediaTypes', 'secretFile', 'secretEnv'];
const BACKOFF_KEYS = ['initial', 'max'];
// Set by the sender itself: a configured value would break the request or lie about the body.
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'host', 'transfer-encoding', 'connection', 'x-registry-signature']);

const fail = (msg: string) => new ConfigError(msg);

/** notifications.maxAge, in seconds (at least one minute: shorter would drop events during any restart). */
export function parseMaxAge(value: unknown, where: string): number {
  return parseDurationSeconds(value, where, 60);
}

function mapping(value: unknown, where: string, keys: string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail(`${where}: expected a mapping`);
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) throw fail(`unknown configuration key "${where}.${key}" (known keys here: ${keys.join(', ')})`);
  }
  return value as Record<string, unknown>;
}

function stringList(value: unknown, where: string, check: (s: string, at: string) => void): string[] {
  if (!Array.isArray(value)) throw fail(`${where}: expected a list`);
  return value.map((v, i) => {
    if (typeof v !== 'string' || v === '') throw fail(`${where}[${i}]: expected a non-empty string, got ${JSON.stringify(v)}`);
    check(v, `${where}[${i}]`);
    return v;
  });
}

function parseUrl(value: unknown, where: string): string {
  if (typeof value !== 'string') throw fail(`${where}: expected an http:// or https:// URL, got ${JSON.stringify(value)}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw fail(`${where}: not a URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw fail(`${where}: must be an http:// or https:// URL, got ${url.protocol}`);
  // The URL is logged and shown by `notifications status`: credentials belong in headers.
  if (url.username || url.password) throw fail(`${where}: put credentials in headers (e.g. Authorization), not in the URL`);
  return url.href;
}

function parseHeaders(value: unknown, where: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail(`${where}: expected a mapping of header names to values`);
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(value)) {
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) throw fail(`${where}: ${JSON.stringify(name)} is not a header name`);
    if (RESERVED_HEADERS.has(name.toLowerCase())) throw fail(`${where}.${name}: set by the registry itself`);
    // What Node's HTTP client sends: tabs, visible ASCII and Latin-1; anything else would fail every POST.
    if ((typeof v !== 'string' && typeof v !== 'number') || !/^[\t\x20-\x7e\x80-\xff]*$/.test(String(v))) {
      throw fail(`${where}.${name}: expected a one-line string of printable characters`);
    }
    out[name] = String(v);
  }
  return out;
}

/** Node runs a timer of more than 2^31-1 ms (24.8 days) at once: such a backoff would retry in a loop. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function timerMs(value: unknown, where: string): number {
  const ms = parseDurationMs(value, where);
  if (ms > MAX_TIMER_MS) throw fail(`${where}: at most 24d, got ${JSON.stringify(value)}`);
  return ms;
}

function whole(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw fail(`${where}: expected a whole number, at least 0, got ${JSON.stringify(value)}`);
  return value;
}

function parseEndpoint(raw: unknown, at: string): EndpointSettings {
  const r = mapping(raw, at, KEYS);
  if (typeof r.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(r.name)) {
    throw fail(`${at}.name: expected a name of letters, digits, . _ - (at most 64), got ${JSON.stringify(r.name)}`);
  }
  if (r.url === undefined) throw fail(`${at}.url: required`);
  const backoff = mapping(r.backoff ?? {}, `${at}.backoff`, BACKOFF_KEYS);
  const initialMs = backoff.initial === undefined ? 1000 : timerMs(backoff.initial, `${at}.backoff.initial`);
  const maxMs = backoff.max === undefined ? 300_000 : timerMs(backoff.max, `${at}.backoff.max`);
  if (initialMs < 10) throw fail(`${at}.backoff.initial: must be at least 10ms`);
  if (maxMs < initialMs) throw fail(`${at}.backoff.max: must be at least backoff.initial`);
  const timeoutMs = r.timeout === undefined ? 5000 : timerMs(r.timeout, `${at}.timeout`);
  if (timeoutMs < 10) throw fail(`${at}.timeout: must be at least 10ms`);
  if (r.enabled !== undefined && typeof r.enabled !== 'boolean') throw fail(`${at}.enabled: expected true or false`);
  if (r.secretFile !== undefined && (typeof r.secretFile !== 'string' || r.secretFile === '')) throw fail(`${at}.secretFile: expected a file path`);
  if (r.secretEnv !== undefined && (typeof r.secretEnv !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(r.secretEnv))) {
    throw fail(`${at}.secretEnv: expected an environment variable name`);
  }
  if (r.secretFile !== undefined && r.secretEnv !== undefined) throw fail(`${at}: secretFile and secretEnv are exclusive`);
  const out: EndpointSettings = {
    name: r.name,
    url: parseUrl(r.url, `${at}.url`),
    enabled: r.enabled ?? true,
    headers: r.headers === undefined ? {} : parseHeaders(r.headers, `${at}.headers`),
    timeoutMs,
    backoff: { initialMs, maxMs },
    maxRetries: r.maxRetries === undefined ? 0 : whole(r.maxRetries, `${at}.maxRetries`),
    repositories:
      r.repositories === undefined
        ? ['**']
        : stringList(r.repositories, `${at}.repositories`, (g, w) => {
            const problem = globProblem(g, false);
            if (problem) throw fail(`${w}: ${problem}`);
          }),
    ignoreMediaTypes: r.ignoreMediaTypes === undefined ? [] : stringList(r.ignoreMediaTypes, `${at}.ignoreMediaTypes`, () => undefined),
  };
  if (r.actions !== undefined) {
    out.actions = stringList(r.actions, `${at}.actions`, (a, w) => {
      if (!(ACTIONS as readonly string[]).includes(a)) throw fail(`${w}: expected one of ${ACTIONS.join(', ')}, got ${JSON.stringify(a)}`);
    }) as Action[];
  }
  if (r.secretFile !== undefined) out.secretFile = r.secretFile as string;
  if (r.secretEnv !== undefined) out.secretEnv = r.secretEnv as string;
  return out;
}

/** notifications.endpoints: a list of endpoint mappings with unique names. */
export function parseEndpoints(value: unknown, where: string): EndpointSettings[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw fail(`${where}: expected a list of endpoints`);
  const endpoints = value.map((raw, i) => parseEndpoint(raw, `${where}[${i}]`));
  const seen = new Set<string>();
  endpoints.forEach((e, i) => {
    if (seen.has(e.name)) throw fail(`${where}[${i}].name: ${JSON.stringify(e.name)} is used by an earlier endpoint`);
    seen.add(e.name);
  });
  return endpoints;
}

/** Cross-key rule: an endpoint cannot ask for pull events that are never made. */
export function checkPullEvents(endpoints: readonly EndpointSettings[], pullEvents: boolean): void {
  if (pullEvents) return;
  endpoints.forEach((e, i) => {
    if (e.actions?.includes('pull')) {
      throw fail(`notifications.endpoints[${i}].actions: "pull" needs notifications.pullEvents: true (pull events are off by default)`);
    }
  });
}
