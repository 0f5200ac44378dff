/**
 * Faults while writing: the output goes to a temporary file beside the destination and is renamed
 * only after verification; a convert or prune killed (SIGKILL) at any point leaves the destination
 * as it was, with no partial file ever visible there, and the next run removes the stray temporary
 * file; read-only and full destinations give clear errors; an input is never replaced, whatever
 * name the output path gives it.
 *
 * Kills land at known points through the PRUNEPACK_TEST_PAUSE_* hooks of writeFileAtomic, and at
 * random points (a random byte count, then a short random delay while the writer runs on).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { protectInputFile, writeFileAtomic } from '../src/io/files.js';
import { PrunepackError } from '../src/errors.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { writeTflite } from '../converters/tflite/write.js';
import { BuiltinOperator } from '../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../schemas/generated/tflite/tflite/builtin-options.js';
import { TensorType } from '../schemas/generated/tflite/tflite/tensor-type.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { repoPath, tempDir } from './helpers.js';

const CLI = repoPath('dist', 'src', 'cli', 'bin.js');
const PAUSE_MARK = 'prunepack test pause:';

/** A dense float32 MLP of about 2 MiB: big enough that the write takes 32 64-KiB pieces. */
function buildLargeModel(seed: number): Uint8Array {
  const g = new TfliteGraphBuilder();
  const width = 256;
  let x = g.tensor('input', TensorType.FLOAT32, [1, width]);
  const input = x;
  let state = seed >>> 0;
  for (let l = 0; l < 8; l++) {
    const w = new Float32Array(width * width);
    for (let i = 0; i < w.length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      w[i] = (state / 4294967296 - 0.5) * 0.1;
    }
    const weights = g.constant(`dense${l}/weights`, TensorType.FLOAT32, [width, width], new Uint8Array(w.buffer));
    const y = g.tensor(`dense${l}/out`, TensorType.FLOAT32, [1, width]);
    g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [x, weights, -1], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
    x = y;
  }
  return writeTflite(g.finish([input], [x], 'prunepack robustness test model'));
}

function sha(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

/** The destination's state: absent, or the sha256 of its bytes. */
function state(file: string): string {
  try {
    return sha(fs.readFileSync(file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw e;
  }
}

function strayTemps(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.includes('.prunepack-') && n.endsWith('.tmp'));
}

function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...options.env }, uid: options.uid, gid: options.gid });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface KillRun {
  /** Destination state seen at the pause (before the kill). */
  atPause: string | undefined;
  /** Temporary files beside the destination at the pause. */
  tempsAtPause: string[];
  /** Every destination state seen while the child ran (polled). */
  seen: Set<string>;
  exit: { code: number | null; signal: NodeJS.Signals | null };
}

/**
 * Runs the CLI with a pause hook, waits for the pause, then SIGKILLs it after `delayMs` (0: at the
 * pause itself; > 0: the child resumes after `resumeMs` and is killed wherever it has got to).
 */
function killAtPause(args: string[], dest: string, env: NodeJS.ProcessEnv, delayMs: number, resumeMs: number): Promise<KillRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, PRUNEPACK_TEST_PAUSE_MS: String(resumeMs), ...env }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    const run: KillRun = { atPause: undefined, tempsAtPause: [], seen: new Set([state(dest)]), exit: { code: null, signal: null } };
    let lastIno = -1;
    const poll = setInterval(() => {
      // A new inode at the destination means a rename happened: read what it shows.
      let ino = -2;
      try { ino = fs.statSync(dest).ino; } catch { /* absent */ }
      if (ino !== lastIno) { lastIno = ino; run.seen.add(state(dest)); }
    }, 1);
    let stderr = '';
    let killed = false;
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (killed || !stderr.includes(PAUSE_MARK)) return;
      killed = true;
      run.atPause = state(dest);
      run.tempsAtPause = strayTemps(path.dirname(dest));
      if (delayMs === 0) child.kill('SIGKILL');
      else setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.on('error', reject);
    // 'close', not 'exit': the pause note on stderr may arrive after the process has exited.
    child.on('close', (code, signal) => {
      clearInterval(poll);
      run.seen.add(state(dest));
      run.exit = { code, signal };
      if (!killed) reject(new Error(`the child never paused (exit ${code}): ${stderr}`));
      else resolve(run);
    });
  });
}

test('writeFileAtomic: the temporary file sits beside the destination and is renamed only after the check', () => {
  const dir = tempDir('atomic');
  try {
    const dest = path.join(dir, 'out.bin');
    fs.writeFileSync(dest, 'old');
    const bytes = new Uint8Array(100_000).map((_, i) => i & 0xff);
    let checked = false;
    writeFileAtomic(dest, bytes.length, [{ position: 0, bytes }], (temp) => {
      assert.equal(path.dirname(temp), dir, 'temporary file in the destination folder');
      assert.match(path.basename(temp), /^\.out\.bin\.prunepack-\d+-[0-9a-z]+\.tmp$/);
      assert.equal(sha(fs.readFileSync(temp)), sha(bytes), 'complete before the check');
      assert.equal(fs.readFileSync(dest, 'utf8'), 'old', 'destination untouched during the check');
      checked = true;
    });
    assert.ok(checked);
    assert.equal(sha(fs.readFileSync(dest)), sha(bytes));
    assert.deepEqual(strayTemps(dir), []);

    // A failing check: the destination keeps its old bytes and the temporary file is gone.
    assert.throws(() => writeFileAtomic(dest, 3, [{ position: 0, bytes: new Uint8Array([1, 2, 3]) }], () => {
      throw new PrunepackError('VERIFY_FAILED', 'check failed on purpose');
    }), (e: unknown) => e instanceof PrunepackError && e.code === 'VERIFY_FAILED');
    assert.equal(sha(fs.readFileSync(dest)), sha(bytes));
    assert.deepEqual(strayTemps(dir), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('writeFileAtomic removes temporary files of dead runs and keeps those of live ones', () => {
  const dir = tempDir('stale');
  try {
    let deadPid = 4_000_000;
    for (; deadPid < 4_100_000; deadPid++) {
      try { process.kill(deadPid, 0); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'ESRCH') break; }
    }
    const dead = path.join(dir, `.out.bin.prunepack-${deadPid}-abc.tmp`);
    const live = path.join(dir, `.out.bin.prunepack-${process.ppid}-abc.tmp`);
    const other = path.join(dir, `.other.bin.prunepack-${deadPid}-abc.tmp`);
    for (const f of [dead, live, other]) fs.writeFileSync(f, 'partial');
    writeFileAtomic(path.join(dir, 'out.bin'), 1, [{ position: 0, bytes: new Uint8Array([7]) }]);
    assert.equal(fs.existsSync(dead), false, 'a dead run\'s temporary file is removed');
    assert.equal(fs.existsSync(live), true, 'a live run\'s temporary file is kept');
    assert.equal(fs.existsSync(other), true, 'another destination\'s temporary file is left alone');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a convert or prune killed at known points of the write leaves the destination as it was', async () => {
  const dir = tempDir('kill-points');
  try {
    const model = buildLargeModel(1);
    const input = path.join(dir, 'model.tflite');
    fs.writeFileSync(input, model);
    const dest = path.join(dir, 'out.tflite');
    // The output a completed run writes (the dense writer is deterministic).
    const reference = path.join(dir, 'reference.tflite');
    assert.equal(runCli(['convert', input, '--to', 'tflite', '-o', reference, '--no-verify']).status, 0);
    const expected = sha(fs.readFileSync(reference));
    const size = fs.statSync(reference).size;
    const old = sha(model); // a previous output that must survive: here, a copy of the input

    const points: Array<{ name: string; env: NodeJS.ProcessEnv; args: string[] }> = [
      { name: 'before the first byte', env: { PRUNEPACK_TEST_PAUSE_AFTER_BYTES: '0' }, args: ['--no-verify'] },
      { name: 'after 64 KiB', env: { PRUNEPACK_TEST_PAUSE_AFTER_BYTES: String(1 << 16) }, args: ['--no-verify'] },
      { name: 'half way', env: { PRUNEPACK_TEST_PAUSE_AFTER_BYTES: String(size >> 1) }, args: ['--no-verify'] },
      { name: 'after the last byte, before fsync and verification', env: { PRUNEPACK_TEST_PAUSE_AFTER_BYTES: String(size) }, args: [] },
      { name: 'after verification, before the rename', env: { PRUNEPACK_TEST_PAUSE_BEFORE_RENAME: '1' }, args: [] },
    ];
    for (const withOld of [false, true]) {
      for (const point of points) {
        if (withOld) fs.writeFileSync(dest, model);
        else fs.rmSync(dest, { force: true });
        const before = withOld ? old : 'absent';
        const run = await killAtPause(['convert', input, '--to', 'tflite', '-o', dest, '--force', ...point.args], dest, point.env, 0, 30_000);
        const label = `${point.name}, destination ${withOld ? 'present' : 'absent'}`;
        assert.equal(run.exit.signal, 'SIGKILL', label);
        assert.equal(run.atPause, before, `${label}: destination intact at the pause`);
        assert.equal(run.tempsAtPause.length, 1, `${label}: the output is being written to one temporary file`);
        assert.deepEqual([...run.seen], [before], `${label}: the destination never showed anything else`);
        assert.equal(state(dest), before, `${label}: destination intact after the kill`);
        assert.deepEqual(strayTemps(dir), run.tempsAtPause, `${label}: the killed run left its temporary file`);
        // The next run cleans up and completes.
        const next = runCli(['convert', input, '--to', 'tflite', '-o', dest, '--force', '--no-verify']);
        assert.equal(next.status, 0, `${label}: ${next.stderr}`);
        assert.equal(state(dest), expected, label);
        assert.deepEqual(strayTemps(dir), [], `${label}: no temporary file after the next run`);
      }
    }

    // prune writes through the same path (its check reads the output back).
    fs.writeFileSync(dest, model);
    const pruned = await killAtPause(['prune', input, '--sparsity', '0.5', '-o', dest, '--force'], dest, { PRUNEPACK_TEST_PAUSE_BEFORE_RENAME: '1' }, 0, 30_000);
    assert.equal(pruned.atPause, old);
    assert.deepEqual([...pruned.seen], [old]);
    assert.equal(runCli(['prune', input, '--sparsity', '0.5', '-o', dest, '--force']).status, 0);
    assert.deepEqual(strayTemps(dir), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('50 converts killed at random points: the destination is always the old file or the complete new one', async () => {
  const dir = tempDir('kill-random');
  try {
    const model = buildLargeModel(2);
    const input = path.join(dir, 'model.tflite');
    fs.writeFileSync(input, model);
    const reference = path.join(dir, 'reference.tflite');
    assert.equal(runCli(['convert', input, '--to', 'tflite', '-o', reference, '--no-verify']).status, 0);
    const expected = sha(fs.readFileSync(reference));
    const size = fs.statSync(reference).size;
    const old = sha(model);
    let random = 12345;
    const next = (n: number) => { random = (Math.imul(random, 1103515245) + 12345) >>> 0; return random % n; };
    const outcomes = { oldKept: 0, newComplete: 0 };
    const runs = Array.from({ length: 50 }, (_, i) => ({
      i, pauseAfter: next(size + 1), resumeMs: next(4), delayMs: 1 + next(12), withOld: next(2) === 1,
    }));
    // Two at a time, each with its own destination.
    const worker = async (lane: number) => {
      const dest = path.join(dir, `out-${lane}.tflite`);
      for (const r of runs.filter((x) => x.i % 2 === lane)) {
        if (r.withOld) fs.writeFileSync(dest, model);
        else fs.rmSync(dest, { force: true });
        const before = r.withOld ? old : 'absent';
        const run = await killAtPause(['convert', input, '--to', 'tflite', '-o', dest, '--force', '--no-verify'], dest,
          { PRUNEPACK_TEST_PAUSE_AFTER_BYTES: String(r.pauseAfter) }, r.delayMs, r.resumeMs);
        const label = `run ${r.i}: kill ${r.delayMs} ms after byte ${r.pauseAfter} of ${size} (resumed after ${r.resumeMs} ms)`;
        for (const s of run.seen) assert.ok(s === before || s === expected, `${label}: the destination showed a partial or foreign file`);
        const after = state(dest);
        assert.ok(after === before || after === expected, `${label}: destination ${after}`);
        if (after === before) outcomes.oldKept++;
        else outcomes.newComplete++;
        assert.equal(runCli(['convert', input, '--to', 'tflite', '-o', dest, '--force', '--no-verify']).status, 0, label);
        assert.equal(state(dest), expected, label);
        assert.deepEqual(strayTemps(dir).filter((n) => n.startsWith(`.out-${lane}.`)), [], `${label}: stray temporary file after the next run`);
      }
    };
    const lanes = await Promise.allSettled([worker(0), worker(1)]);
    for (const lane of lanes) if (lane.status === 'rejected') throw lane.reason;
    assert.equal(outcomes.oldKept + outcomes.newComplete, 50);
    assert.ok(outcomes.oldKept > 0, 'some kills landed before the rename');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Mounts a tmpfs (we run as root in CI); undefined when this machine does not allow it. */
function mountTmpfs(dir: string, options: string): boolean {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0;
}

function unmount(dir: string): void {
  spawnSync('umount', [dir]);
}

test('a destination on a full file system: a clear error, no temporary file, an old file kept', (t) => {
  const dir = tempDir('full');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  if (!mountTmpfs(mnt, 'size=64k')) {
    t.skip('cannot mount a 64 KiB tmpfs here (needs root and mount permission)');
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  try {
    const input = repoPath('samples', 'cnn-synthetic-dense.tflite');
    const dest = path.join(mnt, 'out.tflite');
    const r = runCli(['convert', input, '--to', 'tflite', '-o', dest, '--no-verify']);
    assert.equal(r.status, 5, r.stderr);
    assert.match(r.stderr, /cannot write .*out\.tflite: ENOSPC\. The disk is full; free space or choose another destination/);
    assert.deepEqual(fs.readdirSync(mnt), [], 'nothing left on the full disk');

    fs.writeFileSync(dest, 'previous output');
    const again = runCli(['prune', input, '--sparsity', '0.5', '-o', dest, '--force']);
    assert.equal(again.status, 5, again.stderr);
    assert.match(again.stderr, /ENOSPC\. The disk is full/);
    assert.equal(fs.readFileSync(dest, 'utf8'), 'previous output');
    assert.deepEqual(fs.readdirSync(mnt), ['out.tflite']);
  } finally {
    unmount(mnt);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a read-only destination: clear errors for a read-only file system and for a folder without write permission', (t) => {
  const dir = tempDir('readonly');
  try {
    const input = path.join(dir, 'model.tflite');
    fs.copyFileSync(repoPath('samples', 'cnn-synthetic-dense.tflite'), input);
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(input, 0o644);

    const mnt = path.join(dir, 'ro');
    fs.mkdirSync(mnt);
    if (mountTmpfs(mnt, 'ro,size=64k')) {
      try {
        const r = runCli(['convert', input, '--to', 'tflite', '-o', path.join(mnt, 'out.tflite'), '--no-verify']);
        assert.equal(r.status, 5, r.stderr);
        assert.match(r.stderr, /cannot write .*out\.tflite: EROFS\. The destination is on a read-only file system/);
      } finally {
        unmount(mnt);
      }
    } else {
      t.diagnostic('read-only file system case skipped: cannot mount a tmpfs here');
    }

    // Root ignores folder permissions: run the command as nobody.
    const locked = path.join(dir, 'locked');
    fs.mkdirSync(locked, { mode: 0o555 });
    fs.chmodSync(locked, 0o555);
    if (process.getuid?.() === 0) {
      const r = runCli(['convert', input, '--to', 'tflite', '-o', path.join(locked, 'out.tflite'), '--no-verify'], { uid: 65534, gid: 65534 });
      assert.equal(r.status, 5, r.stderr);
      assert.match(r.stderr, /cannot write .*out\.tflite: EACCES\. Check the file permissions/);
      assert.deepEqual(fs.readdirSync(locked), []);
    } else {
      const r = runCli(['convert', input, '--to', 'tflite', '-o', path.join(locked, 'out.tflite'), '--no-verify']);
      assert.equal(r.status, 5, r.stderr);
      assert.match(r.stderr, /EACCES\. Check the file permissions/);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the input is never replaced: the same path, a symlink, a hard link or a path through a linked folder', () => {
  const dir = tempDir('input');
  try {
    const input = path.join(dir, 'model.tflite');
    fs.copyFileSync(repoPath('samples', 'cnn-synthetic-dense.tflite'), input);
    const original = sha(fs.readFileSync(input));
    fs.symlinkSync('model.tflite', path.join(dir, 'alias.tflite'));
    fs.linkSync(input, path.join(dir, 'hard.tflite'));
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.symlinkSync('..', path.join(dir, 'sub', 'up'));
    const outputs = [
      input, `${dir}/./model.tflite`, path.join(dir, 'sub', '..', 'model.tflite'),
      path.join(dir, 'alias.tflite'), path.join(dir, 'hard.tflite'), path.join(dir, 'sub', 'up', 'model.tflite'), path.join(dir, 'sub', 'up', 'hard.tflite'),
    ];
    for (const output of outputs) {
      for (const args of [['convert', input, '--to', 'tflite', '--no-verify'], ['prune', input, '--sparsity', '0.5']]) {
        const r = runCli([...args, '-o', output, '--force']);
        assert.equal(r.status, 2, `${args[0]} -o ${output}: ${r.stderr}`);
        assert.match(r.stderr, /the output would replace the input/, `${args[0]} -o ${output}`);
        assert.equal(sha(fs.readFileSync(input)), original, `${args[0]} -o ${output}: input intact`);
      }
    }
    assert.equal(fs.lstatSync(path.join(dir, 'alias.tflite')).isSymbolicLink(), true, 'the symlink is still a symlink');
    assert.deepEqual(strayTemps(dir), []);

    // The library guard on its own: files marked as inputs (commands mark theirs; plugins can mark
    // what they read beside the model, such as external data and shards) are never replaced.
    protectInputFile(input);
    const shard = path.join(dir, 'weights.bin');
    fs.writeFileSync(shard, 'shard');
    protectInputFile(shard);
    assert.throws(() => writeFileAtomic(shard, 1, [{ position: 0, bytes: new Uint8Array(1) }]), /the output would replace the input/);
    assert.equal(fs.readFileSync(shard, 'utf8'), 'shard');
    assert.throws(() => writeFileAtomic(path.join(dir, 'hard.tflite'), 1, [{ position: 0, bytes: new Uint8Array(1) }]),
      (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT' && /under another name/.test(e.message));
    assert.equal(sha(fs.readFileSync(input)), original);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
