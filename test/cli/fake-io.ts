import type { CliIo, Output } from '../../src/cli/io';

// In-process stand-ins for stdout and stderr (a terminal one too), recording what a command writes.

export interface FakeOutput extends Output {
  text(): string;
}

export function fakeOutput(tty?: { columns: number }): FakeOutput {
  let written = '';
  return {
    write(chunk: string) {
      written += chunk;
      return true;
    },
    isTTY: tty !== undefined,
    columns: tty?.columns,
    text: () => written,
  };
}

export function fakeIo(tty?: { columns: number }): CliIo & { stdout: FakeOutput; stderr: FakeOutput } {
  return { stdin: process.stdin, stdout: fakeOutput(), stderr: fakeOutput(tty) };
}

/** A stack trace line, as Node prints one. */
export const STACK = /\n\s+at /;
