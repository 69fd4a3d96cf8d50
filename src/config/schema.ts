// The whole configuration, described once: every key with its type, default and meaning.
// load.ts derives validation, defaults and REGISTRY_* environment overrides from this tree,
// so a key cannot exist in one place and be forgotten in another.

import { parseGroups, parseRules } from '../auth/rules';
import { ConfigError } from './errors';
import { parseTrustProxy, type TrustProxy } from '../http/trust-proxy';
import { parseQuotas, type QuotaRule } from '../quota/quotas';
import { parsePolicies, type RetentionPolicy } from '../retention/policy';
import { parseUpstreams, type UpstreamConfig } from '../proxy/config';
import { parsePathPrefix, parseSessionTtl } from '../ui/settings';
import { parseEndpoints, parseMaxAge, type EndpointSettings } from '../notifications/settings';
import { parseListenAddr } from '../metrics/settings';

/** os/architecture[/variant], as in an index's platform. */
function parsePlatform(value: unknown, where: string): string {
  if (typeof value !== 'string' || !/^[a-z0-9_.-]+\/[a-z0-9_.-]+(\/[a-z0-9_.-]+)?$/.test(value)) {
    throw new ConfigError(`${where}: expected os/architecture[/variant] such as linux/amd64, got ${JSON.stringify(value)}`);
  }
  return value;
}

export type LeafType = 'string' | 'boolean' | 'integer' | 'enum' | 'custom';

export interface Leaf {
  readonly leaf: true;
  readonly type: LeafType;
  readonly default: unknown;
  /** For 'custom' leaves: validate and convert (throws ConfigError naming `where`). */
  readonly parse?: (value: unknown, where: string) => unknown;
  readonly values?: readonly string[];
  readonly min?: number;
  readonly optional?: boolean;
  readonly doc: string;
}

export interface Branch {
  readonly [key: string]: Leaf | Branch;
}

const str = (def: string, doc: string) => ({ leaf: true, type: 'string', default: def, doc }) as const;
/** A string that may be left empty (meaning: not set). */
const optional = (doc: string) => ({ leaf: true, type: 'string', default: '', optional: true, doc }) as const;
const bool = (def: boolean, doc: string) => ({ leaf: true, type: 'boolean', default: def, doc }) as const;
const int = (def: number, doc: string, min = 0) => ({ leaf: true, type: 'integer', default: def, min, doc }) as const;
const custom = <T>(def: T, parse: (value: unknown, where: string) => T, doc: string) =>
  ({ leaf: true, type: 'custom', default: def, parse, doc }) as const;
const oneOf = <V extends string>(values: readonly V[], def: V, doc: string) =>
  ({ leaf: true, type: 'enum', default: def, values, doc }) as const;

export const schema = {
  http: {
    addr: str('127.0.0.1:5000', 'host:port to listen on'),
    trustProxy: custom<TrustProxy>(
      false,
      parseTrustProxy,
      'proxies trusted for X-Forwarded-Proto/Host/For: false, a hop count (1 behind one nginx) or a list of their addresses/CIDRs',
    ),
    unauthenticatedTimeout: int(30, 'seconds a request may take to send its headers and body before it has authenticated', 1),
    shutdownTimeout: int(30, 'seconds to let in-flight requests finish on SIGTERM/SIGINT before exiting', 1),
    maxJsonBody: int(4 * 1024 * 1024, 'largest accepted JSON body (image json, manifests, image lists), in bytes', 1024),
  },
  storage: {
    driver: oneOf(['local', 's3'], 'local', 'blob storage driver'),
    local: {
      root: str('./data/blobs', 'directory holding blob and upload files'),
      fsync: bool(true, 'fsync every blob before it becomes visible (turn off only for throwaway test data)'),
      shared: bool(false, 'root is a file system every replica mounts (NFS, CephFS...): required to run local storage with index.driver postgres, whose replicas would otherwise each keep blobs the others cannot read'),
      directWrites: bool(false, 'write upload bodies with O_DIRECT, past the page cache (on: less CPU per push where fresh page-cache pages are costly, but a just-pushed blob is read from disk on its first pull)'),
    },
    s3: {
      bucket: optional('bucket name (required with driver s3)'),
      region: str('us-east-1', 'region'),
      endpoint: optional('endpoint URL of an S3-compatible service (empty: AWS)'),
      forcePathStyle: bool(false, 'path-style addressing (most S3-compatible services need it)'),
      prefix: optional('key prefix inside the bucket, e.g. "registry/"'),
      accessKeyId: optional('access key (empty: the SDK default credential chain)'),
      secretAccessKey: optional('secret key (empty: the SDK default credential chain)'),
      partSize: int(8 * 1024 * 1024, 'multipart part size in bytes (at least 5 MiB)', 5 * 1024 * 1024),
      concurrency: int(4, 'parts uploaded in parallel per blob', 1),
      redirect: bool(false, 'answer blob GETs with a redirect to a presigned URL'),
      redirectExpiry: int(900, 'lifetime of presigned URLs, in seconds', 1),
    },
  },
  index: {
    driver: oneOf(['sqlite', 'postgres'], 'sqlite', 'metadata index: sqlite (one process, no setup) or postgres (several replicas share it; docs/replicas.md)'),
    path: str('./data/index.db', 'SQLite metadata index file (driver sqlite)'),
    postgres: {
      url: optional('postgres://user@host:port/database (required with driver postgres); its password, if any, is never logged'),
      password: optional('password, if not in the URL (prefer passwordFile or the REGISTRY_INDEX_POSTGRES_PASSWORD variable)'),
      passwordFile: optional('file whose first line is the password (read at start)'),
      maxConnections: int(10, 'pooled connections per replica, which also holds three of its own (PostgreSQL\'s max_connections bounds replicas x (this + 3))', 2),
      cacheStaleness: int(
        1000,
        'milliseconds within which a change made through another replica is seen by this one: manifest reads are answered from memory, which every change committed anywhere empties (LISTEN/NOTIFY, in about a millisecond), and stop being answered from it when that cannot be vouched for within this bound (docs/replicas.md). A change is seen at once on the replica that made it. 0: every read asks PostgreSQL',
      ),
    },
    compactInterval: int(3600, 'seconds between checks whether the reference journal in storage has outgrown a snapshot of the index, which then replaces it (0: never in the background; `npm run registry -- compact-journal` does it)'),
  },
  log: {
    level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info', 'log level'),
  },
  protocols: {
    v1: bool(true, 'serve the Docker Registry v1 API under /v1/'),
    v2: bool(true, 'serve the OCI Distribution (v2) API under /v2/; Docker >= 1.6 prefers v2 whenever /v2/ answers'),
    bridge: bool(true, 'v1 tags are also pullable over v2 as Docker schema 2 images made from their v1 chain, and single-platform v2 images over v1 (docs/bridge.md); a tag wins in the protocol that pushed it'),
    bridgePlatform: custom<string>('linux/amd64', parsePlatform, 'the entry of a multi-platform index that v1 clients get through the bridge: os/architecture[/variant]'),
  },
  uploads: {
    purgeAfter: int(24 * 3600, 'seconds after which an unfinished upload is removed', 60),
    maxOpen: int(1000, 'unfinished uploads one user (or one anonymous address) may keep open at once', 1),
  },
  gc: {
    interval: int(3600, 'seconds between background garbage collections (0: never in the background; `npm run registry -- gc` runs one)'),
    delay: int(3600, 'seconds a blob, a link no manifest uses yet, or an untagged manifest is kept before it may be collected: a push has this long to name what it uploaded'),
    untagged: oneOf(['keep', 'delete'], 'keep', 'manifests no tag reaches (children of tagged indexes and referrers of kept manifests are never untagged): keep, or delete once older than `delay`'),
  },
  retention: {
    interval: int(86400, 'seconds between background retention runs when policies are set (0: never in the background; `npm run registry -- retention` runs one)'),
    dryRun: bool(false, 'background runs only log what they would delete'),
    pullFlush: int(10, 'seconds manifest pulls are gathered in memory before their times are written (for keepPulledWithin)', 1),
    policies: custom<RetentionPolicy[]>(
      [],
      parsePolicies,
      'per repository glob, the first that matches: [{repository, keepLast, keepTags, deleteOlderThan, keepPulledWithin}]; a tag no rule keeps is deleted',
    ),
  },
  quotas: custom<QuotaRule[]>([], parseQuotas, 'byte limits: [{repository: glob, limit: 10GiB}]; each limits the repositories its glob matches together'),
  auth: {
    htpasswd: {
      path: optional('htpasswd file (bcrypt entries, as `htpasswd -B` writes); empty: no authentication'),
      realm: str('registry', 'realm named in Basic challenges'),
    },
    token: {
      enabled: bool(false, 'issue Docker registry tokens at /token and challenge v2 clients with Bearer'),
      service: str('registry', 'service name in Bearer challenges and tokens'),
      expiry: int(300, 'token lifetime in seconds', 30),
      v1Expiry: int(3600, 'lifetime of v1 X-Docker-Tokens in seconds (a Docker 1.x push uses one token throughout)', 30),
      uploadGrace: int(3600, 'seconds after expiry a Bearer token may still continue an upload started while it was valid', 0),
      secretFile: str('./data/token.key', 'HMAC key for tokens (created if missing; share it between replicas)'),
      issuer: optional('also accept tokens whose iss is this external token service (empty: only our own tokens)'),
      realm: optional('token endpoint URL sent in Bearer challenges (required with issuer; empty: this registry\'s /token)'),
      jwks: optional('JWKS file with the external issuer\'s public keys (RS256/ES256...), chosen by kid; re-read on change'),
      certificates: optional('PEM bundle of the external issuer\'s certificates: x5c chains must end at one, or kid name one\'s key'),
    },
    groups: custom<Record<string, string[]>>({}, parseGroups, 'named groups of users: {group: [user, ...]}'),
    rules: custom<import('../auth/rules').AccessRule[]>([], parseRules, 'access rules: [{repository, who, actions}]'),
    failedLogins: {
      limit: int(10, 'failed logins per client and user name before further attempts are refused for `window`', 1),
      perClient: int(30, 'failed logins per client address, whatever the user names, before its attempts are refused for `window`', 1),
      window: int(300, 'seconds over which failed logins are counted', 1),
    },
    passwordChecks: {
      perClient: int(4, 'password checks (bcrypt runs) one client address may have under way at once; more get 429', 1),
      queue: int(32, 'password checks waiting for the bcrypt worker at most; more get 503', 1),
    },
  },
  notifications: {
    endpoints: custom<EndpointSettings[]>(
      [],
      parseEndpoints,
      'webhook receivers of push/pull/delete/mount events (docs/notifications.md): [{name, url, enabled, headers, timeout, backoff: {initial, max}, maxRetries, actions, repositories, ignoreMediaTypes, secretFile | secretEnv}]',
    ),
    maxAge: custom<number>(86400, parseMaxAge, 'an event not delivered within this long is dropped with a log line: 24h, 30m or seconds (at least 1m)'),
    pullEvents: bool(false, 'also make pull events (manifest GETs; one index write per pull): off by default, they can be many'),
  },
  proxy: {
    upstreams: custom<UpstreamConfig[]>(
      [],
      (value, where) => parseUpstreams(value, where),
      'pull-through cache (docs/proxy.md): [{prefix: hub/, url, username, passwordFile | passwordEnv, tagTtl, repositories: [globs], caFile, timeout}]; repositories under a prefix are read-only copies of the upstream\'s',
    ),
  },
  ui: {
    enabled: bool(true, 'serve the web UI (browse repositories, tags and images; delete with the right)'),
    pathPrefix: custom<string>('/ui', parsePathPrefix, 'path the web UI is served under, in its links and as its cookie path (behind a proxy: the path the proxy forwards unchanged)'),
    sessionTtl: custom<number>(8 * 3600, parseSessionTtl, 'how long a web UI login lasts: 8h, 30m, 2d or seconds'),
    sessionSecretFile: optional('HMAC key of web UI session cookies and CSRF tokens (created with mode 0600 if missing; share it between replicas); empty: ui-session.key beside index.path'),
  },
  metrics: {
    enabled: bool(false, 'serve Prometheus metrics at /metrics (docs/metrics.md); off: nothing is measured per request'),
    addr: custom<string>('', parseListenAddr, 'host:port of a separate listener that serves only /metrics (empty: /metrics on http.addr)'),
    user: optional('user name a scraper must send with Basic credentials (empty: /metrics asks for none)'),
    password: optional('its password (prefer passwordFile or the REGISTRY_METRICS_PASSWORD variable to keeping it in this file)'),
    passwordFile: optional('file whose first line is the password (read at start)'),
  },
} as const satisfies Branch;

export function isLeaf(node: Leaf | Branch): node is Leaf {
  return (node as Leaf).leaf === true;
}

type ValueOf<L> = L extends { type: 'custom'; default: infer T }
  ? T
  : L extends { type: 'boolean' }
  ? boolean
  : L extends { type: 'integer' }
    ? number
    : L extends { type: 'enum'; values: readonly (infer V)[] }
      ? V
      : string;
type ConfigOf<B> = { readonly [K in keyof B]: B[K] extends { leaf: true } ? ValueOf<B[K]> : ConfigOf<B[K]> };

/** The validated configuration, typed from the schema above. */
export type Config = ConfigOf<typeof schema>;
