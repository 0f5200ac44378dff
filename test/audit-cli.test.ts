/**
 * `prunepack audit` on the command line: JSON that follows docs/audit-schema.json, the terminal
 * report, budgets (exit code 4 with the reason on stderr), usage errors (exit code 2), and the
 * progress line (TTY only, NO_COLOR respected, silent otherwise).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { validateJsonSchema } from '../src/audit/json-schema.js';
import { createProgress } from '../src/cli/progress.js';
import { repoPath, tempDir } from './helpers.js';

const BIN = repoPath('dist', 'src', 'cli', 'bin.js');
const SAMPLE = repoPath('samples', 'cnn-synthetic-80.tflite');
const schema = JSON.parse(fs.readFileSync(repoPath('docs', 'audit-schema.json'), 'utf8'));

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('audit command', () => {
  const json = cli('audit', SAMPLE, '--json');
  const report = JSON.parse(json.stdout);
  const sparseBytes: number = report.totals.targets.find((t: { target: string }) => t.target === 'tflite-sparse').bytes;
  const denseBytes: number = report.totals.dense.bytes;

  it('--json follows the documented schema, with every weight and no zero-pattern pictures', () => {
    assert.equal(json.status, 0, json.stderr);
    assert.equal(json.stderr, '', 'no progress output when stderr is not a TTY');
    assert.deepEqual(validateJsonSchema(report, schema, { strict: true }), []);
    assert.equal(report.schema, 'prunepack.audit/1');
    assert.equal(report.weights.length, 11);
    assert.ok(report.weights.every((w: object) => !('zeroPattern' in w)));
    assert.equal(report.options.gzipLevel, 6);
  });

  it('the schema validator catches what is wrong', () => {
    const broken = JSON.parse(json.stdout);
    delete broken.totals.informationBound;
    broken.weights[0].zeros = 'many';
    broken.weights[1].invented = 1;
    const errors = validateJsonSchema(broken, schema, { strict: true });
    assert.deepEqual(errors.map((e) => e.path).sort(), ['/totals', '/weights/0/zeros', '/weights/1/invented']);
  });

  it('prints totals, weights, encodings and the FULLY_CONNECTED report on the terminal', () => {
    const r = cli('audit', SAMPLE, '--top', '3', '--gzip-level', '9');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /totals \(gzip level 9/);
    assert.match(r.stdout, new RegExp(`tflite-sparse\\s+${sparseBytes.toLocaleString('en-US')}`));
    assert.match(r.stdout, /top 3 of 11 weights/);
    assert.match(r.stdout, /dense1\/weights\s+FULLY_CONNECTED:1\s+\[64,2048\]\s+float32\s+524,288\s+80\.0%/);
    assert.match(r.stdout, /FULLY_CONNECTED weights: zeros in whole kernel blocks/);
    assert.match(r.stdout, /XNNPACK fast sparse inference on the tflite-sparse output: (expected|not expected)/);
  });

  it('budgets: exit 4 with the reason on stderr when missed, 0 when met', () => {
    const over = cli('audit', SAMPLE, '--max-bytes', String(sparseBytes - 1));
    assert.equal(over.status, 4);
    assert.match(over.stderr, new RegExp(`budget missed \\(--max-bytes ${sparseBytes - 1}\\): tflite-sparse output is ${sparseBytes} bytes, over the budget of ${sparseBytes - 1} bytes by 1 bytes`));
    const met = cli('audit', SAMPLE, '--max-bytes', String(sparseBytes), '--json');
    assert.equal(met.status, 0, met.stderr);
    assert.deepEqual(JSON.parse(met.stdout).budgets.map((b: { passed: boolean }) => b.passed), [true]);

    const ratio = denseBytes / sparseBytes;
    const low = cli('audit', SAMPLE, '--min-ratio', String(ratio + 0.01), '--target', 'tflite-sparse', '--json');
    assert.equal(low.status, 4);
    assert.match(low.stderr, /budget missed \(--min-ratio .*\): tflite-sparse ratio 3\.\d+x .* below the required/);
    const budget = JSON.parse(low.stdout).budgets[0];
    assert.equal(budget.kind, 'min-ratio');
    assert.ok(Math.abs(budget.actual - ratio) < 1e-12);
    assert.equal(cli('audit', SAMPLE, '--min-ratio', String(ratio - 0.01)).status, 0);
    // The dense target never meets a ratio above 1.
    assert.equal(cli('audit', SAMPLE, '--min-ratio', '1.5', '--target', 'tflite').status, 4);
  });

  it('usage errors exit with 2', () => {
    assert.equal(cli('audit').status, 2);
    assert.equal(cli('audit', SAMPLE, '--top', '-1').status, 2);
    assert.equal(cli('audit', SAMPLE, '--gzip-level', '5').status, 2);
    assert.equal(cli('audit', SAMPLE, '--max-bytes', '10', '--target', 'onnx-sparse').status, 2);
    assert.equal(cli('audit', SAMPLE, '--target', 'tflite').status, 2, '--target without a budget');
    const help = cli('audit', '--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /Usage: prunepack audit MODEL/);
    assert.match(cli('--help').stdout, /audit MODEL/);
    assert.match(cli('--help').stdout, /verify A B/);
  });

  it('writes the HTML report next to the terminal output', () => {
    const out = path.join(tempDir('audit-cli'), 'report.html');
    const r = cli('audit', SAMPLE, '--html', out, '--top', '4');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /HTML report: /);
    const html = fs.readFileSync(out, 'utf8');
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /Content-Security-Policy/);
  });
});

describe('progress line', () => {
  function fakeStream(isTTY: boolean) {
    const writes: string[] = [];
    const stream = { isTTY, columns: 80, write: (s: string) => { writes.push(s); return true; } } as unknown as NodeJS.WriteStream;
    return { stream, writes };
  }

  it('draws a bar on a TTY and clears it when done', () => {
    const saved = process.env.NO_COLOR;
    delete process.env.NO_COLOR;
    try {
      const { stream, writes } = fakeStream(true);
      const p = createProgress({ stream, intervalMs: 0 });
      assert.equal(p.active, true);
      p.callback({ phase: 'gzip', done: 50, total: 100, item: 'dense1/weights' });
      p.done();
      const text = writes.join('');
      assert.match(text, /gzip \[\x1b\[36m#{12}-{12}\x1b\[0m\]  50% dense1\/weights/);
      assert.ok(text.endsWith('\r\x1b[2K'));
    } finally {
      if (saved !== undefined) process.env.NO_COLOR = saved;
    }
  });

  it('respects NO_COLOR, --quiet and non-TTY streams', () => {
    const saved = process.env.NO_COLOR;
    process.env.NO_COLOR = '1';
    try {
      const tty = fakeStream(true);
      const p = createProgress({ stream: tty.stream, intervalMs: 0 });
      p.phase('analyzing weights', 4);
      p.update(4);
      p.done();
      assert.ok(!tty.writes.join('').includes('\x1b[36m'), 'no colour with NO_COLOR');
      assert.match(tty.writes.join(''), /analyzing weights \[#{24}\] 100%/);
    } finally {
      if (saved === undefined) delete process.env.NO_COLOR; else process.env.NO_COLOR = saved;
    }
    const quiet = fakeStream(true);
    const q = createProgress({ stream: quiet.stream, quiet: true });
    q.phase('x', 1);
    q.update(1);
    q.done();
    assert.deepEqual(quiet.writes, []);
    const pipe = fakeStream(false);
    const n = createProgress({ stream: pipe.stream });
    n.phase('x', 1);
    n.done();
    assert.deepEqual(pipe.writes, []);
  });
});
