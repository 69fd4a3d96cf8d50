// The streams a command talks to, and how a CLI entry ends. Commands take these instead of using
// `process` so that tests can run them in-process with fake streams (a fake terminal included).

/** Where a command writes: process.stdout / process.stderr, or a test's fake. */
export interface Output {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface CliIo {
  stdin: NodeJS.ReadStream;
  stdout: Output;
  stderr: Output;
}

export function processIo(): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error && err.message ? err.message : String(err);
}

/**
 * A signal fired by the first Ctrl-C (SIGINT) or SIGTERM, for a command that can stop cleanly between
 * two steps. The handlers go once fired, so a second Ctrl-C kills the process as usual.
 */
export function interruptSignal(): AbortSignal {
  const stop = new AbortController();
  const onSignal = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return stop.signal;
}

/** Exit with `code` once stdout and stderr have taken everything written to them. */
export function exitWith(code: number): void {
  process.exitCode = code;
  // Exit explicitly: a socket or timer a command left open must not keep the tool running after
  // it has printed its summary. The empty writes call back once the earlier writes are flushed.
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

/**
 * Run an entry's main function and exit with its status. Any error, even one thrown outside the
 * command's own promise, ends as one line `<prefix><message>` and status 1: operators never see a
 * stack trace.
 */
export function runEntry(prefix: string, main: () => Promise<number>): void {
  const fail = (err: unknown) => {
    process.stderr.write(`${prefix}${errorMessage(err)}\n`);
    exitWith(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  main().then(exitWith, fail);
}
