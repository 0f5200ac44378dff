/** The prunepack/pack loader: no node: or built-in imports in its compiled graph, and its bundled size. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';
import { repoPath } from './helpers.js';
import { bundlePackLoader, LOADER_BUNDLE_LIMIT } from '../bench/pack.js';

it('prunepack/pack is browser-safe (import graph) and decode-only', () => {
  const pkg = JSON.parse(fs.readFileSync(repoPath('package.json'), 'utf8'));
  const entry = repoPath(pkg.exports['./pack'].default);
  const seen = new Set<string>();
  const external = new Set<string>();
  const stack = [entry];
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const code = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
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
  // Decode-only: no encoder, cost model or zero analysis in the graph.
  const names = [...seen].map((f) => path.relative(repoPath('dist'), f));
  for (const writer of ['src/sparsity/codecs.js', 'src/sparsity/cost.js', 'src/sparsity/analysis.js', 'src/pack/write.js', 'src/pack/pool-encode.js', 'src/pack/range-encoder.js']) {
    assert.ok(!names.includes(writer), `the loader imports ${writer}`);
  }
});

it('prunepack/pack bundled and minified with esbuild (fflate external) is under 50 KB', () => {
  const { bytes, inputs } = bundlePackLoader();
  console.log(`prunepack/pack: ${bytes} bytes minified + fflate (${inputs.length} modules)`);
  assert.ok(inputs.some((f) => f.endsWith('src/pack/format.js')), 'the bundle holds the pack decoder');
  assert.ok(bytes < LOADER_BUNDLE_LIMIT, `${bytes} bytes`);
});
