/** The index database cannot be reached (connection refused, lost, or the server shutting down): a 503. */
export class IndexUnavailableError extends Error {
  override name = 'IndexUnavailableError';
}
