import t from 'tap';
import { Progress } from '../../src/cli/progress';
import { fakeOutput } from './fake-io';

function clock() {
  let now = 1_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

t.test('not a terminal: one plain line per step when it ends, none per item', async (t) => {
  const out = fakeOutput();
  const c = clock();
  const p = new Progress(out, { now: c.now });
  t.equal(p.isTTY, false);
  for (let i = 0; i <= 1000; i++) p.update('scan', i, 1000);
  t.equal(out.text(), '', 'nothing while a step runs');
  c.advance(1400);
  p.update('sweep', 0);
  for (let i = 1; i <= 7; i++) p.update('sweep', i);
  c.advance(20);
  p.update('partial', 3, 10);
  c.advance(5);
  p.abort();
  p.finish();
  t.equal(out.text(), 'scan: 1000 in 1.4 s\nsweep: 7 in 20 ms\npartial: stopped after 3 of 10 (5 ms)\n');
  t.notMatch(out.text(), /\r|\x1b/, 'no terminal control characters in logs');
});

t.test('terminal: a bar rewritten in place, about ten times a second at most', async (t) => {
  const out = fakeOutput({ columns: 80 });
  const c = clock();
  const term = process.env.TERM;
  process.env.TERM = 'xterm';
  t.teardown(() => (term === undefined ? delete process.env.TERM : (process.env.TERM = term)));
  const p = new Progress(out, { now: c.now });
  t.equal(p.isTTY, true, 'taken from the stream');
  p.update('gc blobs', 0, 200);
  for (let i = 1; i <= 100; i++) p.update('gc blobs', i, 200);
  t.equal(out.text().split('\r').length - 1, 1, 'a burst within 100 ms draws once');
  c.advance(100);
  p.update('gc blobs', 100, 200);
  const draws = out.text().split('\r').slice(1);
  t.equal(draws.length, 2, 'drawn again after 100 ms');
  t.equal(draws[1], 'gc blobs [############------------] 100/200 50%\x1b[K');
  t.notMatch(out.text(), /\n/, 'one line, rewritten');
  c.advance(250);
  p.update('gc stray', 5);
  t.match(out.text(), /\rgc blobs: 100 of 200 in 350 ms\x1b\[K\n\rgc stray 5\x1b\[K$/, 'a new step closes the last one, whose line stays');
  p.finish();
  t.match(out.text(), /\rgc stray: 5 in 0 ms\x1b\[K\n$/);
  const written = out.text();
  p.finish();
  t.equal(out.text(), written, 'finishing twice writes nothing more');
});

t.test('terminal: the live line is cut to the width, since a wrapped line cannot be rewritten', async (t) => {
  const out = fakeOutput({ columns: 20 });
  const p = new Progress(out);
  p.update('a long label for a step', 1, 2);
  t.equal(out.text(), '\ra long label for a \x1b[K');
  p.abort();
  t.match(out.text(), /\ra long label for a step: stopped after 1 of 2 \(\d+ ms\)\x1b\[K\n$/, 'the closing line is whole');
});

t.test('a terminal of unknown width (0 columns) gets 80', async (t) => {
  const out = fakeOutput({ columns: 0 });
  new Progress(out, { isTTY: true }).update('step', 1, 2);
  t.equal(out.text(), '\rstep [############------------] 1/2 50%\x1b[K');
});

t.test('a terminal that cannot erase a line (TERM=dumb) gets plain lines', async (t) => {
  const term = process.env.TERM;
  process.env.TERM = 'dumb';
  t.teardown(() => (term === undefined ? delete process.env.TERM : (process.env.TERM = term)));
  t.equal(new Progress(fakeOutput({ columns: 80 })).isTTY, false);
});

t.test('isTTY can be forced either way', async (t) => {
  const tty = fakeOutput({ columns: 80 });
  const plain = new Progress(tty, { isTTY: false });
  plain.update('x', 1, 1);
  t.equal(tty.text(), '');
  const pipe = fakeOutput();
  const bar = new Progress(pipe, { isTTY: true, columns: 40 });
  bar.update('x', 1, 4);
  t.equal(pipe.text(), '\rx [######------------------] 1/4 25%\x1b[K');
});
