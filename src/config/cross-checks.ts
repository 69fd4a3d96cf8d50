import { checkIndexConfig } from '../index/settings';
import { checkMetricsConfig } from '../metrics/settings';
import { checkPullEvents } from '../notifications/settings';
import { ConfigError } from './errors';
import type { Config } from './schema';

// Rules that tie several keys together, which the per-key schema cannot express. parseConfig runs
// them, so the server refuses to start and `registry config check` fails on the same mistakes;
// the modules that use the keys call their rule again for configs built in code (tests, tools).

/** The S3 driver needs a bucket, and static credentials come as a pair. */
export function checkS3Config(s3: Config['storage']['s3']): void {
  if (!s3.bucket) {
    throw new ConfigError('storage.s3.bucket is empty: set it (or REGISTRY_STORAGE_S3_BUCKET) to use storage.driver s3');
  }
  if (!s3.accessKeyId !== !s3.secretAccessKey) {
    throw new ConfigError(
      'storage.s3.accessKeyId and storage.s3.secretAccessKey go together: set both, or neither for the SDK default credential chain',
    );
  }
}

/** Settings an external token issuer needs. */
export function checkIssuerConfig(token: Config['auth']['token']): void {
  // It goes into a quoted challenge header: a URL, nothing that could break out of the quotes.
  if (token.realm && !/^https?:\/\/[^\s"]+$/.test(token.realm)) throw new ConfigError(`auth.token.realm: expected an http(s) URL, got "${token.realm}"`);
  if (token.issuer === '') {
    if (token.jwks || token.certificates) throw new ConfigError('auth.token.jwks/certificates: set auth.token.issuer, the issuer they belong to');
    return;
  }
  if (!token.jwks && !token.certificates) throw new ConfigError('auth.token.issuer: set auth.token.jwks or auth.token.certificates (the issuer\'s public keys)');
  if (!token.realm) throw new ConfigError('auth.token.issuer: set auth.token.realm, the URL of the issuer\'s token endpoint');
}

/**
 * Replicas share one PostgreSQL index; with local storage each would keep the blobs it received on its own
 * disk, listed in the index for all, unreadable to the others. Only a directory every replica mounts will do.
 */
export function checkSharedStorage(config: Config): void {
  if (config.index.driver === 'postgres' && config.storage.driver === 'local' && !config.storage.local.shared) {
    throw new ConfigError(
      'storage.driver local with index.driver postgres: replicas would each keep blobs the others cannot read; use storage.driver s3, or set storage.local.shared: true (REGISTRY_STORAGE_LOCAL_SHARED) if storage.local.root is a file system every replica mounts',
    );
  }
}

export function checkCrossKeys(config: Config): void {
  checkSharedStorage(config);
  if (config.storage.driver === 's3') checkS3Config(config.storage.s3);
  checkIssuerConfig(config.auth.token);
  checkPullEvents(config.notifications.endpoints, config.notifications.pullEvents);
  checkMetricsConfig(config);
  checkIndexConfig(config.index);
}
