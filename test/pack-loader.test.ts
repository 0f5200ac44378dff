/** The prunepack/pack loader's compiled import graph: no node: or built-in imports, and its size. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';
import { repoPath } from './helpers.js';

it('prunepack/pack is browser-safe (import graph) and small', () => {
  const pkg = JSON.parse(fs.readFileSync(repoPath('package.json'), 'utf8'));
  const entry = repoPath(pkg.exports['./pack'].default);
  const seen = new Set<string>();
  const external = new Set<string>();
  const stack = [entry];
  let bytes = 0;
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = fs.readFileSync(file, 'utf8');
    bytes += text.length;
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    for (const m of code.matchAll(/(?:import|export)\s*(?:[^'"]*?from\s*)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2]!;
      if (spec.startsWith('.')) stack.push(path.resolve(path.dirname(file), spec));
      else external.add(spec);
    }
  }
  for (const spec of external) {
    assert.ok(!spec.startsWith('node:') && !builtinModules.includes(spec), `the loader imports ${spec}`);
  }
  assert.deepEqual([...external].sort(), ['fflate']);
  console.log(`prunepack/pack: ${seen.size} modules, ${bytes} bytes of compiled JS (unminified, comments included) + fflate`);
  assert.ok(bytes < 200_000);
});
