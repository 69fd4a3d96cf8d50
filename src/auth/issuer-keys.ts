import { X509Certificate, createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { ConfigError } from '../config/errors';

// The public keys of an external token issuer (Harbor core, GitLab, Keycloak...), as distribution
// takes them: a JWKS file (keys chosen by `kid`) and/or a PEM bundle of certificates (a token's
// `x5c` chain must end at one of them, or its `kid` must name one of their keys). Both files are
// re-read when they change, so keys can be rotated without a restart.

export interface IssuerKeysLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

interface TrustedCert {
  cert: X509Certificate;
  kids: Set<string>;
}

export class IssuerKeys {
  private jwks?: JWTVerifyGetKey;
  private certs: TrustedCert[] = [];

  constructor(
    private readonly jwksPath: string,
    private readonly certsPath: string,
    private readonly log?: IssuerKeysLog,
  ) {
    // At start a bad file stops the start; later, a bad rewrite keeps the last good keys.
    if (jwksPath) this.jwks = loadJwks(jwksPath, 'auth.token.jwks');
    if (certsPath) this.certs = loadCertificates(certsPath, 'auth.token.certificates');
    for (const [file, load] of [
      [jwksPath, () => (this.jwks = loadJwks(jwksPath, jwksPath))],
      [certsPath, () => (this.certs = loadCertificates(certsPath, certsPath))],
    ] as const) {
      if (!file) continue;
      watchFile(file, { interval: 1000, persistent: false }, () => {
        try {
          load();
          this.log?.info({ file }, 'token issuer keys reloaded');
        } catch (err) {
          this.log?.warn({ file, err: (err as Error).message }, 'token issuer keys not reloaded; keeping the previous ones');
        }
      });
    }
  }

  close(): void {
    if (this.jwksPath) unwatchFile(this.jwksPath);
    if (this.certsPath) unwatchFile(this.certsPath);
  }

  /** jose's key resolver: x5c chain to a trusted certificate, else kid among the certificates, else the JWKS. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.x5c && this.certs.length > 0) return this.keyOfChain(header.x5c);
    const cert = header.kid ? this.certs.find((c) => c.kids.has(header.kid!)) : undefined;
    if (cert) return cert.cert.publicKey;
    if (this.jwks) return this.jwks(header, token);
    throw new errors.JWKSNoMatchingKey();
  };

  private keyOfChain(x5c: string[]): KeyObject {
    const chain = x5c.map((der) => new X509Certificate(Buffer.from(der, 'base64')));
    const now = Date.now();
    for (const c of chain) {
      // Written so that a date that does not parse (NaN) refuses rather than passes.
      if (!(Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo))) throw new errors.JWKSNoMatchingKey('x5c certificate outside its validity');
    }
    for (let i = 0; i + 1 < chain.length; i++) {
      if (!chain[i + 1]!.ca || !chain[i]!.checkIssued(chain[i + 1]!) || !chain[i]!.verify(chain[i + 1]!.publicKey)) {
        throw new errors.JWKSNoMatchingKey('x5c chain does not verify');
      }
    }
    const last = chain.at(-1)!;
    const trusted = this.certs.some(
      ({ cert }) => cert.raw.equals(last.raw) || (cert.ca && last.checkIssued(cert) && last.verify(cert.publicKey)),
    );
    if (!trusted) throw new errors.JWKSNoMatchingKey('x5c chain does not end at a trusted certificate');
    return chain[0]!.publicKey;
  }
}

function loadJwks(file: string, where: string): JWTVerifyGetKey {
  let set: JSONWebKeySet;
  try {
    set = JSON.parse(readFileSync(file, 'utf8'));
    if (!set || !Array.isArray(set.keys) || set.keys.length === 0) throw new Error('expected {"keys": [...]} with at least one key');
    for (const [i, jwk] of set.keys.entries()) {
      if (jwk.d !== undefined || jwk.kty === 'oct') throw new Error(`keys[${i}]: a private or symmetric key does not belong in a JWKS`);
      createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    }
  } catch (err) {
    throw new ConfigError(`${where}: cannot use ${file} as a JWKS: ${(err as Error).message}`);
  }
  return createLocalJWKSet(set);
}

function loadCertificates(file: string, where: string): TrustedCert[] {
  let pems: string[];
  try {
    pems = readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (pems.length === 0) throw new Error('no PEM certificate in it');
    return pems.map((pem) => {
      const cert = new X509Certificate(pem);
      return { cert, kids: new Set([libtrustKeyId(cert.publicKey), jwkThumbprint(cert.publicKey)]) };
    });
  } catch (err) {
    throw new ConfigError(`${where}: cannot read certificates from ${file}: ${(err as Error).message}`);
  }
}

/** The key id docker/libtrust (and so distribution and Harbor) give a key: base32 of 240 bits of sha256(SPKI), in groups of 4. */
export function libtrustKeyId(key: KeyObject): string {
  const hash = createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const b of hash) bits += b.toString(2).padStart(8, '0');
  const b32 = bits.match(/.{5}/g)!.map((chunk) => alphabet[parseInt(chunk, 2)]).join('');
  return b32.match(/.{4}/g)!.join(':');
}

/** RFC 7638 thumbprint, the other usual `kid`. */
export function jwkThumbprint(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  const members = jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}
