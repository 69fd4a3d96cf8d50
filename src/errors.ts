// One table of error codes. Registry code throws RegistryError; each protocol's error handler
// formats it: v2 as {"errors":[{code,message,detail}]}, v1 as {"error": message}.

export const ERROR_TABLE = {
  // OCI Distribution spec codes
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  // Codes of our own, for conditions the spec leaves to HTTP
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  TOO_LARGE: { status: 413, message: 'request body too large' },
  BAD_REQUEST: { status: 400, message: 'bad request' },
  NOT_FOUND: { status: 404, message: 'not found' },
  CONFLICT: { status: 409, message: 'conflict' },
  PRECONDITION_FAILED: { status: 412, message: 'precondition failed' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  STORAGE_FULL: { status: 507, message: 'the registry is out of storage space' },
  INTERNAL: { status: 500, message: 'internal error' },
} as const;

export type ErrorCode = keyof typeof ERROR_TABLE;

export class RegistryError extends Error {
  override name = 'RegistryError';
  readonly code: ErrorCode;
  readonly status: number;
  /** The same as `status`, under the name fastify and its plugins read. */
  get statusCode(): number {
    return this.status;
  }
  readonly detail?: unknown;
  /** Extra response headers (e.g. Range on 416, WWW-Authenticate on 401). */
  readonly headers?: Record<string, string>;

  constructor(
    code: ErrorCode,
    message?: string,
    opts: { status?: number; detail?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message ?? ERROR_TABLE[code].message);
    this.code = code;
    this.status = opts.status ?? ERROR_TABLE[code].status;
    this.detail = opts.detail;
    this.headers = opts.headers;
  }
}

/** Map any thrown value to a RegistryError; unknown errors become INTERNAL (and are logged by the caller). */
export function toRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const e = err as { statusCode?: number; code?: string; message?: string; name?: string };
  // The PostgreSQL index is unreachable: retryable, and it recovers by itself when the server is back.
  if (e?.name === 'IndexUnavailableError') return new RegistryError('UNAVAILABLE', 'the index database is unavailable; retry shortly', { headers: { 'retry-after': '1' } });
  // The index knows a blob whose bytes are gone: a client error to the caller, an alarm in the log.
  if (e?.name === 'StorageNotFoundError') return new RegistryError('BLOB_UNKNOWN', 'blob data missing from storage', { status: 404 });
  // A full disk (blobs or index) is the operator's problem, but the client should be told which one.
  if (e?.code === 'ENOSPC' || e?.code === 'EDQUOT' || e?.code === 'SQLITE_FULL') return new RegistryError('STORAGE_FULL');
  // Past the file system's largest file, or the process's file size limit (ulimit -f).
  if (e?.code === 'EFBIG') return new RegistryError('STORAGE_FULL', 'the blob is larger than the storage can hold in one file');
  // Errors raised by fastify itself (bad content length, aborted body, ...) carry a 4xx statusCode.
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    if (e.statusCode === 413) return new RegistryError('TOO_LARGE');
    if (e.statusCode === 404) return new RegistryError('NOT_FOUND', e.message);
    if (e.statusCode === 401) return new RegistryError('UNAUTHORIZED');
    return new RegistryError('BAD_REQUEST', e.message, { status: e.statusCode });
  }
  return new RegistryError('INTERNAL');
}

/** The OCI error body: {"errors":[{code, message, detail}]}. */
export function v2ErrorBody(e: RegistryError): object {
  return { errors: [{ code: e.code, message: e.message, detail: e.detail ?? {} }] };
}

/** The v1 error body: {"error": message}. */
export function v1ErrorBody(e: RegistryError): object {
  return { error: e.message };
}

/** The error body of the protocol a URL belongs to (v2's under /v2 and the token service's /token, v1's elsewhere). */
export function errorBodyFor(url: string, e: RegistryError): object {
  return url.startsWith('/v2') || url.startsWith('/token') ? v2ErrorBody(e) : v1ErrorBody(e);
}
