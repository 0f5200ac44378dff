/**
 * The CI-sized fuzz run: 2,000 mutated inputs of every registered format (the `ci` seed subset of
 * test/fuzz/formats.ts), each read, densified, inspected, written back dense and read again in a
 * runner process with a 2 s bound. Only PrunepackErrors may escape; nothing may hang or allocate
 * beyond 64 MiB + 16x the input (+ the sparse expansion the input may declare).
 *
 * PRUNEPACK_FUZZ_SEED and PRUNEPACK_FUZZ_ITERATIONS override the fixed seed and the count. Long
 * runs: `npm run fuzz` (docs/robustness.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { formatSummary, memoryBound, runCampaign, violationCount } from './fuzz/campaign.js';
import { SELFTEST_BEHAVIOURS, registeredFormats } from './fuzz/formats.js';
import { tempDir } from './helpers.js';

const ITERATIONS = Number(process.env.PRUNEPACK_FUZZ_ITERATIONS ?? 2000);
const SEED = Number(process.env.PRUNEPACK_FUZZ_SEED ?? 0x5eed2026);

test('the fuzz harness catches every kind of violation (a plugin that misbehaves on purpose)', { timeout: 120_000 }, async (t) => {
  const dir = tempDir('fuzz-selftest');
  try {
    // One seed per behaviour, each 4 KiB of its behaviour's byte: mutations keep the majority byte.
    const files = [...SELFTEST_BEHAVIOURS, 'accept'].map((name, kind) => {
      const file = path.join(dir, `${name}.selftest`);
      fs.writeFileSync(file, new Uint8Array(4096).fill(kind));
      return file;
    });
    const options = { format: 'selftest', iterations: 24, seed: 7, jobs: 2, timeoutMs: 300, corpus: files, corpusSet: 'all' } as const;
    const s = await runCampaign(options);
    t.diagnostic(formatSummary(s, options));
    assert.equal(s.inputs, 24);
    for (const [name, count] of Object.entries({ rejected: s.rejected, accepted: s.accepted, escapes: s.escapes, hangs: s.hangs, overAllocations: s.overAllocations, crashes: s.crashes })) {
      assert.ok(count > 0, `${name}: expected some, found none`);
    }
    assert.ok(violationCount(s) > 0);
    const escape = s.violations.find((v) => v.kind === 'escape')!;
    assert.match(escape.detail, /TypeError: self-test escape/);
    assert.ok(escape.steps && escape.steps.length > 0, 'a violation lists the mutations that made its input');
    assert.match(formatSummary(s, options), /reproduce: npm run fuzz -- --format selftest --replay 0x[0-9a-f]{8} --corpus /);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the memory bound: 64 MiB + 16x the input, plus 3x the declared sparse expansion up to 64 MiB + 64x', () => {
  const MiB = 2 ** 20;
  assert.equal(memoryBound(1000), 64 * MiB + 16_000);
  assert.equal(memoryBound(1000, 10 * MiB), 64 * MiB + 16_000 + 30 * MiB);
  assert.equal(memoryBound(1000, 2 ** 40), 64 * MiB + 16_000 + 3 * (64 * MiB + 64_000));
});

/** Open findings: the test still runs and reports, but does not fail the suite until fixed. */
const KNOWN_OPEN: Record<string, string> = {};

for (const format of registeredFormats()) {
  test(`fuzz ${format.id}: ${ITERATIONS} mutated inputs, only PrunepackErrors, no hangs, memory bounded`, { timeout: 240_000, todo: KNOWN_OPEN[format.id] }, async (t) => {
    const options = { format: format.id, iterations: ITERATIONS, seed: SEED, jobs: 2, timeoutMs: 2000, corpusSet: 'ci' } as const;
    const summary = await runCampaign(options);
    const report = formatSummary(summary, options);
    t.diagnostic(report);
    assert.equal(summary.inputs, ITERATIONS);
    assert.equal(violationCount(summary), 0, report);
    // The mutations must reach past the first checks: some inputs read, densify and write fine.
    assert.ok(summary.accepted > ITERATIONS / 50, `too few accepted inputs:\n${report}`);
  });
}
