import { isIP } from 'node:net';
import { ConfigError } from '../config/errors';

// http.trustProxy: which peers may tell the registry the client's address, scheme and host through
// X-Forwarded-*. Trusting every hop (`true`) is refused: the leftmost X-Forwarded-For address is whatever
// the client wrote, so rotating it dodged the failed-login limit and forging it locked other clients out.

/** false: no proxy; a number: that many proxies in front; a list: the proxies' addresses or CIDRs. */
export type TrustProxy = false | number | readonly string[];

/** Ranges proxy-addr knows by name. */
const NAMED = new Set(['loopback', 'linklocal', 'uniquelocal']);

const HOW = 'give the number of proxies in front of the registry (1 behind one nginx) or their addresses/CIDRs (e.g. "127.0.0.1, 172.16.0.0/12")';

function checkEntry(entry: string, where: string): string {
  if (NAMED.has(entry)) return entry;
  const [addr = '', bits, ...rest] = entry.split('/');
  const family = isIP(addr);
  let ok = family !== 0 && rest.length === 0;
  if (ok && bits !== undefined) {
    const max = family === 4 ? 32 : 128;
    // A prefix length, or (IPv4) a dotted netmask.
    ok = /^\d{1,3}$/.test(bits) ? Number(bits) <= max : family === 4 && isIP(bits) === 4;
  }
  if (!ok) throw new ConfigError(`${where}: "${entry}" is not an IP address, CIDR or one of ${[...NAMED].join(', ')}`);
  return entry;
}

/** Validate http.trustProxy (YAML, or REGISTRY_HTTP_TRUST_PROXY: "1" or "10.0.0.1, 10.0.0.0/8"). */
export function parseTrustProxy(value: unknown, where: string): TrustProxy {
  if (value === false || value === 'false') return false;
  if (value === true || value === 'true') {
    throw new ConfigError(`${where}: true would trust every hop, so any client could pick its address with X-Forwarded-For; ${HOW}`);
  }
  if (typeof value === 'string' && /^\s*\d+\s*$/.test(value)) value = Number(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 1) throw new ConfigError(`${where}: a hop count must be an integer of at least 1 (or false), got ${value}`);
    return value;
  }
  const list = typeof value === 'string' ? value.split(',') : value;
  if (!Array.isArray(list) || list.some((v) => typeof v !== 'string')) {
    throw new ConfigError(`${where}: expected false, a hop count or a list of addresses/CIDRs, got ${JSON.stringify(value)}; ${HOW}`);
  }
  const entries = (list as string[]).map((v) => v.trim()).filter(Boolean);
  if (entries.length === 0) throw new ConfigError(`${where}: an empty list trusts no proxy; write false`);
  return entries.map((e) => checkEntry(e, where));
}

/**
 * What fastify's trustProxy option gets. A hop count becomes a function: fastify's own number option
 * ignores X-Forwarded-* entirely (its answer to hop counts being spoofable by direct clients), while
 * the registry documents that with a hop count it must be reachable only through its proxies.
 */
export function fastifyTrustProxy(setting: TrustProxy): false | string[] | ((address: string, hop: number) => boolean) {
  if (setting === false) return false;
  if (typeof setting === 'number') return (_address, hop) => hop < setting;
  return [...setting];
}
