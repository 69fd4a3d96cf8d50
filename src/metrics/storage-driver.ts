import { StorageNotFoundError, type StorageDriver } from '../storage/driver';
import { LATENCY_BUCKETS, secondsSince, type Metrics } from './metrics';

// One decorator around any storage driver: each call is counted, timed and, if it fails, counted as an
// error, by driver and operation. The drivers themselves know nothing of metrics. Optional operations
// stay optional (the BlobStore chooses its path by whether a driver has stagedDigest, openWriter, ...).

/** Operations that return a promise: timed from the call until it settles. */
const ASYNC_OPERATIONS = [
  'ping', 'stat', 'read', 'openWriter', 'delete', 'startUpload', 'appendUpload', 'appendUploadPrefixed', 'stagedDigest',
  'commitUpload', 'abortUpload', 'recorded', 'listStaged', 'putRecord', 'getRecord', 'deleteRecord', 'appendRecord', 'syncRecord',
  'renameRecord', 'quarantine', 'redirectUrl',
] as const satisfies readonly (keyof StorageDriver)[];

/** Operations that return an async iterable: timed from the call until the iteration ends. */
const LISTINGS = ['listObjects', 'listRecords'] as const satisfies readonly (keyof StorageDriver)[];

/** Operations that are neither: passed through untouched. */
const PLAIN = ['forgetUpload', 'releaseIdleMemory', 'close'] as const satisfies readonly (keyof StorageDriver)[];

// A method added to StorageDriver and to none of the lists above fails the typecheck here.
type Covered = (typeof ASYNC_OPERATIONS)[number] | (typeof LISTINGS)[number] | (typeof PLAIN)[number] | 'name';
const everyOperationCovered: [Exclude<keyof StorageDriver, Covered>] extends [never] ? true : never = true;
void everyOperationCovered;

type Labels = { driver: string; operation: string };

/**
 * `inner` with every operation measured on `metrics`. Not found is an answer (a missing object), not an
 * error; read() and openWriter() are timed until the object is open, appendUpload() until its body has been
 * stored (so it includes the time the client takes to send it).
 */
export function instrumentDriver(inner: StorageDriver, metrics: Metrics): StorageDriver {
  const calls = metrics.counter({
    name: 'registry_storage_operations_total',
    help: 'Storage driver operations, by driver and operation',
    labelNames: ['driver', 'operation'],
  });
  const errors = metrics.counter({
    name: 'registry_storage_operation_errors_total',
    help: 'Storage driver operations that failed (not counting objects not found), by driver and operation',
    labelNames: ['driver', 'operation'],
  });
  const seconds = metrics.histogram({
    name: 'registry_storage_operation_duration_seconds',
    help: 'Time storage driver operations took, by driver and operation',
    labelNames: ['driver', 'operation'],
    buckets: LATENCY_BUCKETS,
  });
  const done = (labels: Labels, start: bigint, err?: unknown) => {
    calls.inc(labels);
    seconds.observe(labels, secondsSince(start));
    if (err !== undefined && !(err instanceof StorageNotFoundError)) errors.inc(labels);
  };

  const outer: Record<string, unknown> = { name: inner.name };
  const fn = (op: keyof StorageDriver) => inner[op] as ((...args: unknown[]) => unknown) | undefined;
  for (const op of ASYNC_OPERATIONS) {
    const call = fn(op);
    if (!call) continue;
    const labels: Labels = { driver: inner.name, operation: op };
    outer[op] = async (...args: unknown[]) => {
      const start = process.hrtime.bigint();
      try {
        const result = await call.apply(inner, args);
        done(labels, start);
        return result;
      } catch (err) {
        done(labels, start, err ?? new Error('rejected without a reason'));
        throw err;
      }
    };
  }
  for (const op of LISTINGS) {
    const call = fn(op);
    if (!call) continue;
    const labels: Labels = { driver: inner.name, operation: op };
    outer[op] = async function* (...args: unknown[]) {
      const start = process.hrtime.bigint();
      let failure: unknown;
      try {
        yield* call.apply(inner, args) as AsyncIterable<unknown>;
      } catch (err) {
        failure = err ?? new Error('rejected without a reason');
        throw err;
      } finally {
        done(labels, start, failure); // also when the caller stops early: the listing ended there
      }
    };
  }
  for (const op of PLAIN) {
    const call = fn(op);
    if (call) outer[op] = call.bind(inner);
  }
  return outer as unknown as StorageDriver;
}
