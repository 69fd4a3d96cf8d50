// Who may write to an upload. Within one process the BlobStore refuses a second concurrent request itself;
// this is the same guard between processes. With SQLite there is one process: nothing more to take. With
// PostgreSQL, replicas share uploads, and two requests for one upload on two replicas would append to the
// same staged parts at once (postgres/upload-locks.ts).

/** An upload taken by this process for one request. */
export interface UploadHold {
  /** Aborted when the hold breaks (its connection to the index ended): stop writing. */
  readonly lost: AbortSignal;
  /**
   * Ask the index whether the hold was never broken since it was taken: true proves no other process wrote
   * to the upload meanwhile. Called after writing staged bytes and before recording them.
   */
  confirm(): Promise<boolean>;
  release(): Promise<void>;
}

export interface UploadLocks {
  /** Take upload `id`, or null if another process holds it. */
  tryTake(id: string): Promise<UploadHold | null>;
  close(): Promise<void>;
}

const NEVER_LOST = new AbortController().signal;

/** The only process: every upload is this process's to take. */
export const SOLE_PROCESS_UPLOADS: UploadLocks = {
  tryTake: async () => ({ lost: NEVER_LOST, confirm: async () => true, release: async () => undefined }),
  close: async () => undefined,
};
