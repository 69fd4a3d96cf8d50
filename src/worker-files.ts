import path from 'node:path';

// Worker threads are started from files next to the module that starts them, for both of the registry's
// workers (uploads, bcrypt), the same way in production and under the tests.

/**
 * A worker's file: `name` next to `module` with the module's own extension, so dist/…/name.js in production
 * and src/…/name.ts under the tests' TypeScript loader (a worker inherits the parent's execArgv, and with it
 * the loader, which tap puts there).
 */
export function workerFile(module: string, name: string): string {
  return path.join(path.dirname(module), name + path.extname(module));
}

/**
 * A worker's environment: the process's, without NODE_OPTIONS. A worker started from a file runs the
 * `--import` preloads it inherits, and those of NODE_OPTIONS are for the main thread (an APM agent, tap's
 * process-info loader): one that registers loader hooks gives each worker another thread and V8 isolate,
 * ~600 MiB of address space, and under `ulimit -v` the process died. Preloads in execArgv still reach the
 * worker: tap's TypeScript loader is one.
 */
export function workerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}
