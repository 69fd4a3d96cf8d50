import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

// A module that imports itself back (directly or around a loop) sees half-initialised exports at load
// time and ties two layers together; src/ and bench/ keep none.

const ROOT = resolve(__dirname, '..');
const SPECIFIER = /(?:\bfrom\s+|\brequire\(\s*|\bimport\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

function sources(dir: string, ext: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sources(path, ext);
    return path.endsWith(ext) && !path.endsWith('.d.ts') ? [path] : [];
  });
}

function resolveImport(from: string, specifier: string, ext: string): string | undefined {
  const base = resolve(dirname(from), specifier);
  return [base, base + ext, join(base, `index${ext}`)].find((p) => existsSync(p) && statSync(p).isFile());
}

/** The first import cycle among `files`, as a list of paths, or undefined. */
function findCycle(files: string[], ext: string): string[] | undefined {
  const edges = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    // `import type` is erased at compile time and cannot form a load-time cycle.
    const runtime = text.replace(/^import\s+type\b[^;]*;/gm, '');
    const targets = [...runtime.matchAll(SPECIFIER)].map((m) => resolveImport(file, m[1]!, ext));
    edges.set(file, targets.filter((p): p is string => p !== undefined));
  }
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): string[] | undefined => {
    if (state.get(file) === 'done') return undefined;
    if (state.get(file) === 'open') return [...path.slice(path.indexOf(file)), file];
    state.set(file, 'open');
    path.push(file);
    for (const next of edges.get(file) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(file, 'done');
    return undefined;
  };
  for (const file of files) {
    const cycle = visit(file);
    if (cycle) return cycle.map((p) => relative(ROOT, p));
  }
  return undefined;
}

t.test('src/ has no import cycle', async (t) => {
  t.same(findCycle(sources(join(ROOT, 'src'), '.ts'), '.ts'), undefined);
});

t.test('bench/ has no import cycle', async (t) => {
  t.same(findCycle(sources(join(ROOT, 'bench'), '.js'), '.js'), undefined);
});

t.test('the check finds a cycle, and ignores type-only imports', async (t) => {
  const dir = t.testdir({
    'a.ts': "import { b } from './b';\nexport const a = 1;\n",
    'b.ts': "import type { T } from './c';\nimport { a } from './a';\nexport const b = a;\n",
    'c.ts': "import { b } from './b';\nexport type T = number;\n",
  });
  const cycle = findCycle(sources(dir, '.ts'), '.ts')?.map((p) => p.split('/').pop());
  t.same(cycle, ['a.ts', 'b.ts', 'a.ts']);
});
