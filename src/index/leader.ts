// Which replica runs the background work (stale-upload purge, scheduled garbage collection and retention,
// notification sending): one at a time. With SQLite there is one process, always the leader; with
// PostgreSQL, the replica holding an advisory lock (postgres/leader.ts).

export interface Leadership {
  /** Whether this process leads now, as far as it knows (cheap: read before each tick). */
  readonly held: boolean;
  /** Check with the database that it still leads, just before a run (false: skip the run). */
  confirm(): Promise<boolean>;
  /** Told when this process becomes or stops being the leader. */
  onChange(listener: (held: boolean) => void): void;
  close(): Promise<void>;
}

/** The only process: always the leader. */
export const SOLE_LEADER: Leadership = {
  held: true,
  confirm: async () => true,
  onChange: () => undefined,
  close: async () => undefined,
};

/** An operator command: never the leader. */
export const NEVER_LEADER: Leadership = {
  held: false,
  confirm: async () => false,
  onChange: () => undefined,
  close: async () => undefined,
};
