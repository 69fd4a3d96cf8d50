// What a garbage collection run reports, shared by the collector, the server's schedule and the CLI.

export type GcPhase = 'doomed' | 'manifests' | 'links' | 'blobs' | 'staged' | 'stray';

/** Progress within a phase: `done` items so far, of `total` when known. */
export interface GcProgress {
  phase: GcPhase;
  done: number;
  total?: number;
}

export interface GcReport {
  dryRun: boolean;
  /** Untagged manifests deleted (only with gc.untagged: delete). */
  manifests: number;
  /** Repository blob links no manifest used, older than gc.delay, removed. */
  links: number;
  /** Blobs no one referenced, and their bytes. */
  blobs: number;
  bytes: number;
  /** Staging areas no upload named, and blob objects the index never recorded, removed (and their bytes). */
  staged: number;
  stray: number;
  strayBytes: number;
  durationMs: number;
}

export interface GcRunOptions {
  dryRun?: boolean;
  onProgress?: (p: GcProgress) => void;
  /** Stops the run between two batches (the server is shutting down); the next run finishes the job. */
  signal?: AbortSignal;
}
