import type { Output } from './io';

/**
 * The new password for `user add`: the first line of standard input when it is a pipe or a file
 * (scripts), else typed at a prompt on `prompt` without echo.
 */
export function readPassword(stdin: NodeJS.ReadStream, prompt: Output): Promise<string> {
  if (!stdin.isTTY) {
    return new Promise((resolve, reject) => {
      let data = '';
      stdin.setEncoding('utf8');
      stdin.on('data', (c) => (data += c));
      stdin.on('end', () => resolve(data.split(/\r?\n/)[0] ?? ''));
      stdin.on('error', reject);
    });
  }
  prompt.write('password: ');
  return new Promise((resolve) => {
    let pw = '';
    // Raw mode turns echo off, and also turns Ctrl-C and Ctrl-D into plain characters, handled below.
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    stdin.on('data', (ch: string) => {
      for (const c of ch) {
        if (c === '\r' || c === '\n' || c === '\u0004') {
          stdin.setRawMode(false);
          stdin.pause();
          prompt.write('\n');
          resolve(pw);
          return;
        }
        if (c === '\u0003') {
          stdin.setRawMode(false);
          prompt.write('\n');
          process.exit(130);
        }
        pw = c === '\u007f' ? pw.slice(0, -1) : pw + c;
      }
    });
  });
}
