/**
 * ONNX external data: reading tensors from files next to the model, writing them, and refusing
 * every hostile location with its own message without opening anything outside the folder.
 * Run: npx tsc -p . && node --test dist/test/onnx-external-data.test.js
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { encodeOnnxModel, type ModelSpec, type TensorStorageSpec } from '../converters/onnx/builder.js';
import { defaultExternalLocation, writeOnnxFiles } from '../converters/onnx/files.js';
import { readOnnx, writeOnnx, type OnnxWeight } from '../converters/onnx/index.js';
import { PrunepackError } from '../src/errors.js';
import { openModel } from '../src/index.js';
import { compareOnnxModels } from '../src/verify/onnx-runtime.js';
import { mulberry32 } from '../src/verify/tflite-runtime.js';
import { repoPath, tempDir } from './helpers.js';

const ROWS = 16;
const COLS = 8;
const rand = mulberry32(3);
const W1 = Float32Array.from({ length: ROWS * COLS }, () => (rand() < 0.8 ? 0 : rand() - 0.5));
const W2 = Float32Array.from({ length: COLS * 4 }, () => rand() - 0.5);
const W1_BYTES = new Uint8Array(W1.buffer);
const W2_BYTES = new Uint8Array(W2.buffer);
const SECRET = Buffer.from('TOP-SECRET-OUTSIDE-THE-MODEL-FOLDER'.repeat(64));

function model(w1Storage: TensorStorageSpec, w2Storage: TensorStorageSpec = 'raw'): Uint8Array {
  const spec: ModelSpec = {
    irVersion: 8, opsets: [{ domain: '', version: 13 }],
    graph: {
      name: 'ext',
      nodes: [
        { opType: 'MatMul', inputs: ['x', 'W1'], outputs: ['h'] },
        { opType: 'MatMul', inputs: ['h', 'W2'], outputs: ['y'] },
      ],
      initializers: [
        { name: 'W1', dtype: 'float32', dims: [ROWS, COLS], data: W1_BYTES, storage: w1Storage },
        { name: 'W2', dtype: 'float32', dims: [COLS, 4], data: W2_BYTES, storage: w2Storage },
      ],
      inputs: [{ name: 'x', dtype: 'float32', dims: [1, ROWS] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: [1, 4] }],
    },
  };
  return encodeOnnxModel(spec);
}

let root: string;
let folder: string;
let outside: string;
let secretPath: string;
/** Every path opened through node:fs while a hostile model is read. */
let opened: string[] = [];
const realOpen = fs.openSync;
const realReadFile = fs.readFileSync;

function startSpying(): void {
  opened = [];
  (fs as { openSync: typeof fs.openSync }).openSync = ((p: fs.PathLike, ...rest: unknown[]) => {
    opened.push(path.resolve(String(p)));
    return (realOpen as (...a: unknown[]) => number)(p, ...rest);
  }) as typeof fs.openSync;
  (fs as { readFileSync: typeof fs.readFileSync }).readFileSync = ((p: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
    if (typeof p !== 'number') opened.push(path.resolve(String(p)));
    return (realReadFile as (...a: unknown[]) => unknown)(p, ...rest);
  }) as typeof fs.readFileSync;
}

function stopSpying(): string[] {
  (fs as { openSync: typeof fs.openSync }).openSync = realOpen;
  (fs as { readFileSync: typeof fs.readFileSync }).readFileSync = realReadFile;
  return opened;
}

function writeModelFile(name: string, bytes: Uint8Array): string {
  const file = path.join(folder, name);
  fs.writeFileSync(file, bytes);
  return file;
}

before(() => {
  root = tempDir('onnx-ext');
  folder = path.join(root, 'model');
  outside = path.join(root, 'outside');
  fs.mkdirSync(path.join(folder, 'sub'), { recursive: true });
  fs.mkdirSync(outside);
  secretPath = path.join(outside, 'secret.bin');
  fs.writeFileSync(secretPath, SECRET);
  // weights.bin: 100 bytes of padding, then W1, then W2
  const data = Buffer.concat([Buffer.alloc(100, 0xee), Buffer.from(W1_BYTES), Buffer.from(W2_BYTES)]);
  fs.writeFileSync(path.join(folder, 'weights.bin'), data);
  fs.writeFileSync(path.join(folder, 'sub', 'w1.bin'), W1_BYTES);
  fs.symlinkSync(path.join('..', 'outside', 'secret.bin'), path.join(folder, 'link.bin'));
  fs.symlinkSync(path.join(folder, 'weights.bin'), path.join(folder, 'inside-link.bin'));
  fs.linkSync(secretPath, path.join(folder, 'hard.bin'));
});

after(() => {
  stopSpying();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('reading external data', () => {
  test('location, offset and length resolve relative to the model folder', () => {
    const file = writeModelFile('ok.onnx', model(
      { external: { location: 'weights.bin', offset: 100, length: W1_BYTES.length } },
      { external: { location: 'weights.bin', offset: 100 + W1_BYTES.length } },
    ));
    startSpying();
    const { model: m } = openModel(file);
    const byName = new Map(m.weights.map((w) => [w.name, w as OnnxWeight]));
    assert.deepEqual(Buffer.from(byName.get('W1')!.denseBytes()), Buffer.from(W1_BYTES));
    assert.deepEqual(Buffer.from(byName.get('W2')!.denseBytes()), Buffer.from(W2_BYTES));
    const paths = stopSpying();
    assert.ok(paths.includes(fs.realpathSync(path.join(folder, 'weights.bin'))), 'the spy sees external data opens');
    assert.equal(byName.get('W1')!.onnx.storage, 'external');
  });

  test('subfolders, inner .. that stays inside, and symlinks inside the folder are accepted', () => {
    for (const location of ['sub/w1.bin', 'sub/../sub/w1.bin', './sub/w1.bin']) {
      const file = writeModelFile('sub-ok.onnx', model({ external: { location } }));
      assert.deepEqual(Buffer.from(openModel(file).model.weights[0]!.denseBytes()), Buffer.from(W1_BYTES), location);
    }
    const file = writeModelFile('link-ok.onnx', model({ external: { location: 'inside-link.bin', offset: 100, length: W1_BYTES.length } }));
    assert.deepEqual(Buffer.from(openModel(file).model.weights[0]!.denseBytes()), Buffer.from(W1_BYTES));
  });

  const hostile: Array<{ name: string; storage: TensorStorageSpec; code: string; message: RegExp }> = [
    { name: 'absolute path', storage: { external: { location: '' } }, code: 'UNSAFE_PATH', message: /is an absolute path/ },
    { name: '../ escape', storage: { external: { location: '../outside/secret.bin' } }, code: 'UNSAFE_PATH', message: /climbs out of the model folder \(it starts with '\.\.'\)/ },
    { name: 'a/../../b escape', storage: { external: { location: 'sub/../../outside/secret.bin' } }, code: 'UNSAFE_PATH', message: /leaves the model folder after resolving '\.\.' \(it resolves to '\.\.\/outside\/secret\.bin'\)/ },
    { name: 'symlink out of the folder', storage: { external: { location: 'link.bin' } }, code: 'UNSAFE_PATH', message: /symlink .* leads outside the model folder/ },
    { name: 'hardlink', storage: { external: { location: 'hard.bin' } }, code: 'UNSAFE_PATH', message: /has 2 hard links/ },
    { name: 'onnxruntime in-memory sentinel', storage: { external: { location: '*/_ORT_MEM_ADDR_/*', offset: 4096, length: 512 } }, code: 'UNSAFE_PATH', message: /in-memory sentinel/ },
    { name: 'offset + length past EOF', storage: { external: { location: 'weights.bin', offset: 1000, length: 512 } }, code: 'CORRUPT', message: /runs past the end of weights\.bin/ },
    { name: 'negative length', storage: { external: { location: 'weights.bin', offset: 100, length: '-512' } }, code: 'CORRUPT', message: /length is negative/ },
    { name: 'negative offset', storage: { external: { location: 'weights.bin', offset: '-4', length: 512 } }, code: 'CORRUPT', message: /offset is negative/ },
    { name: 'non-numeric offset', storage: { external: { location: 'weights.bin', offset: '0x10', length: 512 } }, code: 'CORRUPT', message: /offset is not a number/ },
    { name: 'NUL byte', storage: { external: { location: 'weights.bin\0../../outside/secret.bin' } }, code: 'UNSAFE_PATH', message: /NUL byte/ },
    { name: 'a folder', storage: { external: { location: 'sub' } }, code: 'UNSAFE_PATH', message: /not a regular file/ },
    { name: 'missing file', storage: { external: { location: 'nope.bin' } }, code: 'IO', message: /cannot be opened: ENOENT/ },
    { name: 'length not matching the tensor', storage: { external: { location: 'weights.bin', offset: 0, length: 16 } }, code: 'CORRUPT', message: /does not match the tensor shape/ },
  ];

  for (const c of hostile) {
    test(`refuses ${c.name}`, () => {
      const storage = c.name === 'absolute path' ? { external: { location: secretPath } } : c.storage;
      const file = writeModelFile(`hostile-${c.name.replace(/\W+/g, '-')}.onnx`, model(storage));
      startSpying();
      let error: unknown;
      try { openModel(file); } catch (e) { error = e; }
      const paths = stopSpying();
      assert.ok(error instanceof PrunepackError, `expected a PrunepackError, got ${String(error)}`);
      assert.equal(error.code, c.code, error.message);
      assert.match(error.message, c.message);
      assert.ok(!error.message.includes('TOP-SECRET'), 'no outside bytes in the message');
      const realFolder = fs.realpathSync(folder);
      const outsideOpens = paths.filter((p) => !p.startsWith(realFolder + path.sep) && !p.startsWith(folder + path.sep));
      assert.deepEqual(outsideOpens, [], 'nothing outside the model folder was opened');
    });
  }

  test('each hostile case has its own message', () => {
    assert.equal(new Set(hostile.map((c) => c.message.source)).size, hostile.length);
  });

  test('external data without a model path is an argument error', () => {
    assert.throws(() => readOnnx(model({ external: { location: 'weights.bin', offset: 100, length: W1_BYTES.length } })),
      (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT' && /path is unknown/.test(e.message));
  });
});

describe('writing external data', () => {
  test('in-memory targets inline external tensors; the result runs like the original', async () => {
    const file = writeModelFile('inline-src.onnx', model({ external: { location: 'weights.bin', offset: 100, length: W1_BYTES.length } }));
    const { model: m } = openModel(file);
    const inline = writeOnnx(m, 'onnx');
    const back = readOnnx(inline);
    assert.equal((back.weights[0] as OnnxWeight).onnx.storage, 'raw');
    assert.deepEqual(Buffer.from(back.weights[0]!.denseBytes()), Buffer.from(W1_BYTES));
    const r = await compareOnnxModels(file, inline);
    assert.ok(r.bitIdentical);
  });

  test('writeOnnxFiles puts tensors over the threshold in a data file next to the model; reading it back gives the same weights', async () => {
    const src = model('raw', 'typed');
    const m = readOnnx(src);
    const out = path.join(folder, 'written', 'model.onnx');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    for (const target of ['onnx', 'onnx-sparse'] as const) {
      const result = writeOnnxFiles(m, out, { target, externalData: { location: 'model.onnx.data', threshold: 64 } });
      assert.equal(result.externalPath, path.join(path.dirname(out), 'model.onnx.data'));
      assert.ok(result.externalBytes >= (target === 'onnx' ? W1_BYTES.length + W2_BYTES.length : W2_BYTES.length));
      const back = openModel(out).model;
      for (const w of back.weights as OnnxWeight[]) {
        const want = w.name === 'W1' ? W1_BYTES : W2_BYTES;
        assert.deepEqual(Buffer.from(w.denseBytes()), Buffer.from(want), `${target} ${w.name}`);
      }
      const storages = new Map((back.weights as OnnxWeight[]).map((w) => [w.name, w.onnx.storage]));
      assert.equal(storages.get('W2'), 'external');
      assert.equal(storages.get('W1'), target === 'onnx' ? 'external' : 'sparse (linear)');
      const r = await compareOnnxModels(src, out);
      assert.ok(r.bitIdentical, `${target}: ${JSON.stringify(r.outputs)}`);
    }
  });

  test('an escaping external data location is refused on write too', () => {
    const m = readOnnx(model('raw'));
    assert.throws(() => writeOnnxFiles(m, path.join(folder, 'esc.onnx'), { target: 'onnx', externalData: { location: '../outside/x.data', threshold: 1 } }),
      (e: unknown) => e instanceof PrunepackError && e.code === 'UNSAFE_PATH');
    assert.ok(!fs.existsSync(path.join(outside, 'x.data')));
  });
});

describe('the input\'s external data files (Model.companionFiles)', () => {
  /** A folder holding in.onnx whose weights live in out.onnx.data: the name an output out.onnx would give its data. */
  function setUp(name: string): { dir: string; input: string; data: string; dataBytes: Buffer } {
    const dir = path.join(root, name);
    fs.mkdirSync(dir);
    const dataBytes = Buffer.concat([Buffer.from(W1_BYTES), Buffer.from(W2_BYTES)]);
    const data = path.join(dir, 'out.onnx.data');
    fs.writeFileSync(data, dataBytes);
    const input = path.join(dir, 'in.onnx');
    fs.writeFileSync(input, model(
      { external: { location: 'out.onnx.data', offset: 0, length: W1_BYTES.length } },
      { external: { location: 'out.onnx.data', offset: W1_BYTES.length, length: W2_BYTES.length } },
    ));
    return { dir, input, data, dataBytes };
  }

  test('lists every external data file read, once, by its real path; none without external data', () => {
    const file = writeModelFile('companions.onnx', model(
      { external: { location: 'weights.bin', offset: 100, length: W1_BYTES.length } },
      { external: { location: 'inside-link.bin', offset: 100 + W1_BYTES.length } },
    ));
    assert.deepEqual(openModel(file).model.companionFiles, [fs.realpathSync(path.join(folder, 'weights.bin'))]);
    const sub = writeModelFile('companions-sub.onnx', model({ external: { location: 'sub/w1.bin' } }));
    assert.deepEqual(openModel(sub).model.companionFiles, [fs.realpathSync(path.join(folder, 'sub', 'w1.bin'))]);
    assert.equal(openModel(writeModelFile('companions-none.onnx', model('raw'))).model.companionFiles, undefined);
  });

  test('writeOnnxFiles refuses to write its data file over the input\'s (out.onnx -> out.onnx.data); the data is unchanged', () => {
    const { dir, input, data, dataBytes } = setUp('companion-lib');
    const { model: m } = openModel(input);
    const out = path.join(dir, 'out.onnx');
    assert.equal(defaultExternalLocation(out), 'out.onnx.data');
    assert.throws(() => writeOnnxFiles(m, out, { target: 'onnx', externalData: { location: defaultExternalLocation(out), threshold: 1 } }), (e: unknown) => {
      assert.ok(e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT', String(e));
      assert.match(e.message, /external data file would replace an external data file the input model reads/);
      assert.equal(e.found, `${data} is ${fs.realpathSync(data)}`);
      return true;
    });
    assert.deepEqual(fs.readFileSync(data), dataBytes);
    assert.ok(!fs.existsSync(out));
    // Under another data name the same call works, and the copy reads back equal.
    const result = writeOnnxFiles(m, out, { target: 'onnx', externalData: { location: 'copy.data', threshold: 1 } });
    assert.equal(result.externalBytes >= dataBytes.length, true);
    assert.deepEqual(fs.readFileSync(data), dataBytes);
    const back = openModel(out).model;
    assert.deepEqual(back.companionFiles, [fs.realpathSync(path.join(dir, 'copy.data'))]);
    assert.deepEqual(Buffer.concat(back.weights.map((w) => w.denseBytes())), dataBytes);
  });

  test('convert -o out.onnx keeps the input\'s out.onnx.data intact, and -o out.onnx.data is refused', () => {
    const { dir, input, data, dataBytes } = setUp('companion-cli');
    const cli = (...args: string[]) => spawnSync(process.execPath, [repoPath('dist', 'src', 'cli', 'bin.js'), ...args], { encoding: 'utf8', timeout: 120_000 });
    const out = path.join(dir, 'out.onnx');
    const converted = cli('convert', input, '--to', 'onnx', '-o', out, '--no-verify');
    assert.deepEqual(fs.readFileSync(data), dataBytes);
    if (converted.status === 0) {
      const back = openModel(out).model;
      assert.deepEqual(Buffer.concat(back.weights.map((w) => w.denseBytes())), dataBytes);
    } else {
      assert.match(converted.stderr, /external data/, converted.stderr);
    }
    const replaced = cli('convert', input, '--to', 'onnx', '-o', data, '--force', '--no-verify');
    assert.equal(replaced.status, 2, replaced.stderr);
    assert.match(replaced.stderr, /would replace (the input|an external data file the input model reads)/);
    assert.deepEqual(fs.readFileSync(data), dataBytes);
  });

  const cli = (...args: string[]) => spawnSync(process.execPath, [repoPath('dist', 'src', 'cli', 'bin.js'), ...args], { encoding: 'utf8', timeout: 120_000 });
  // 64 x 32 float32 (8 KiB, 80% zeros: external at the CLI's 1 KiB threshold, sparse in onnx-sparse) and 32 x 4 (512 B: inline).
  const r3 = mulberry32(11);
  const B1 = new Uint8Array(Float32Array.from({ length: 64 * 32 }, () => (r3() < 0.8 ? 0 : r3() - 0.5)).buffer);
  const B2 = new Uint8Array(Float32Array.from({ length: 32 * 4 }, () => r3() - 0.5).buffer);
  const bigger = (s1: TensorStorageSpec, s2: TensorStorageSpec) => encodeOnnxModel({
    irVersion: 8, opsets: [{ domain: '', version: 13 }],
    graph: {
      name: 'ext-cli',
      nodes: [{ opType: 'MatMul', inputs: ['x', 'W1'], outputs: ['h'] }, { opType: 'MatMul', inputs: ['h', 'W2'], outputs: ['y'] }],
      initializers: [
        { name: 'W1', dtype: 'float32', dims: [64, 32], data: B1, storage: s1 },
        { name: 'W2', dtype: 'float32', dims: [32, 4], data: B2, storage: s2 },
      ],
      inputs: [{ name: 'x', dtype: 'float32', dims: [1, 64] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: [1, 4] }],
    },
  });

  test('convert keeps external data external (streamed by writeOnnxFiles), verified in onnxruntime; the input\'s data is untouched', () => {
    const dir = path.join(root, 'cli-external');
    fs.mkdirSync(dir);
    const dataBytes = Buffer.concat([Buffer.from(B1), Buffer.from(B2)]);
    fs.writeFileSync(path.join(dir, 'weights.bin'), dataBytes);
    const input = path.join(dir, 'in.onnx');
    fs.writeFileSync(input, bigger(
      { external: { location: 'weights.bin', offset: 0, length: B1.length } },
      { external: { location: 'weights.bin', offset: B1.length, length: B2.length } },
    ));
    for (const target of ['onnx', 'onnx-sparse']) {
      const out = path.join(dir, `${target}.onnx`);
      const r = cli('convert', input, '--to', target, '-o', out, '--json');
      assert.equal(r.status, 0, r.stderr);
      const summary = JSON.parse(r.stdout) as { externalData: string | null; externalBytes: number; modelBytes: number; runtime: { bitIdentical: boolean } | null; weightsVerified: number };
      assert.equal(summary.modelBytes, fs.statSync(out).size);
      assert.equal(summary.runtime?.bitIdentical, true);
      assert.equal(summary.weightsVerified, 2);
      const back = openModel(out).model;
      if (target === 'onnx') {
        // W1 (8 KiB) external, W2 (512 B) inline.
        assert.equal(summary.externalData, path.join(dir, 'onnx.onnx.data'));
        assert.equal(summary.externalBytes, B1.length);
        assert.equal(fs.statSync(summary.externalData).size, B1.length);
        assert.deepEqual(back.companionFiles, [fs.realpathSync(summary.externalData)]);
      } else {
        // W1 is stored as a (smaller, inline) sparse tensor, W2 is under the threshold: no data file.
        assert.equal(summary.externalData, null);
        assert.equal(back.companionFiles, undefined);
      }
      assert.deepEqual(Buffer.from(back.weights.find((w) => w.name === 'W2')!.denseBytes()), Buffer.from(B2));
      assert.deepEqual(Buffer.from(back.weights.find((w) => w.name === 'W1')!.denseBytes()), Buffer.from(B1));
    }
    assert.deepEqual(fs.readFileSync(path.join(dir, 'weights.bin')), dataBytes);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['in.onnx', 'onnx-sparse.onnx', 'onnx.onnx', 'onnx.onnx.data', 'weights.bin']);
  });

  test('--external-data F moves an inline model\'s tensors to F; only ONNX targets take it', () => {
    const dir = path.join(root, 'cli-external-flag');
    fs.mkdirSync(dir);
    const input = path.join(dir, 'inline.onnx');
    fs.writeFileSync(input, bigger('raw', 'raw'));
    const out = path.join(dir, 'out.onnx');
    const r = cli('convert', input, '--to', 'onnx', '-o', out, '--external-data', 'tensors.bin');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /tensors\.bin/);
    assert.match(r.stdout, /bit-identical outputs/);
    const back = openModel(out).model;
    assert.deepEqual(back.companionFiles, [fs.realpathSync(path.join(dir, 'tensors.bin'))]);
    assert.deepEqual(Buffer.from(back.weights.find((w) => w.name === 'W1')!.denseBytes()), Buffer.from(B1));
    const escaping = cli('convert', input, '--to', 'onnx', '-o', path.join(dir, 'esc.onnx'), '--external-data', '../x.bin');
    assert.notEqual(escaping.status, 0);
    assert.ok(!fs.existsSync(path.join(dir, 'esc.onnx')) && !fs.existsSync(path.join(root, 'x.bin')));
    const tflite = cli('convert', repoPath('samples', 'cnn-synthetic-80.tflite'), '--to', 'tflite-sparse', '-o', path.join(dir, 'x.tflite'), '--external-data', 'x.bin');
    assert.equal(tflite.status, 2, tflite.stderr);
    assert.match(tflite.stderr, /--external-data applies to ONNX targets only/);
  });
});
