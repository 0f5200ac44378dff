/**
 * TF.js inputs are untrusted: hostile shard paths are refused, each with its own message, by the
 * file reader and by the loader, without opening or fetching anything outside the model folder;
 * corrupt and truncated model.json files, shards and sparse blobs give PrunepackError with a code
 * (never a TypeError or garbage weights); writes are all-or-nothing.
 * Run: npx tsc -p . && node --test dist/test/tfjs-safety.test.js
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { writeTfjsFiles } from '../converters/tfjs/files.js';
import { layoutTfjs, readTfjs } from '../converters/tfjs/index.js';
import { decodeTfjsArtifacts, loadTfjsArtifacts } from '../converters/tfjs/loader.js';
import { PrunepackError, type ErrorCode } from '../src/errors.js';
import { openModel } from '../src/index.js';
import { buildModel, concat, everyDtypeWeights, layoutFiles, randomFloats, stringBytes, writeFolder } from './tfjs-fixtures.js';
import { tempDir } from './helpers.js';

let root: string;
let folder: string;
let secret: string;

before(() => {
  root = tempDir('tfjs-safety');
  folder = path.join(root, 'model');
  fs.mkdirSync(folder);
  secret = path.join(root, 'secret.bin');
  fs.writeFileSync(secret, new Uint8Array(16 * 4));
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

function isError(code: ErrorCode, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof PrunepackError, `expected PrunepackError, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

/** model.json with one float32 [16] weight in the shard `shardPath`. */
function modelWith(shardPath: string): string {
  return JSON.stringify({ format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [{ paths: [shardPath], weights: [{ name: 'w', shape: [16], dtype: 'float32' }] }] });
}

describe('hostile shard paths', () => {
  const cases: Array<{ what: string; path: string; message: RegExp; setup?: () => void }> = [
    { what: 'absolute path', path: '/etc/passwd', message: /absolute path/ },
    { what: 'absolute path to the secret', path: '', message: /absolute path/ },
    { what: 'Windows drive path', path: 'C:\\secret.bin', message: /absolute path/ },
    { what: 'leading ..', path: '../secret.bin', message: /'\.\.' segment/ },
    { what: '.. in the middle', path: 'sub/../../secret.bin', message: /'\.\.' segment/ },
    { what: 'backslash ..', path: '..\\secret.bin', message: /'\.\.' segment/ },
    { what: 'percent-encoded ..', path: '%2e%2E/secret.bin', message: /'\.\.' segment/ },
    { what: 'URL', path: 'https://evil.example/w.bin', message: /is a URL/ },
    { what: 'file URL', path: 'file:///etc/passwd', message: /is a URL/ },
    { what: 'protocol-relative URL', path: '//evil.example/w.bin', message: /protocol-relative/ },
    { what: 'NUL byte', path: 'w.bin\u0000.txt', message: /NUL byte/ },
    { what: 'the folder itself', path: './', message: /folder itself/ },
    { what: 'symlink out of the folder', path: 'link.bin', message: /symlink .*outside the model folder/, setup: () => fs.symlinkSync(secret, path.join(folder, 'link.bin')) },
    { what: 'symlinked directory', path: 'linkdir/secret.bin', message: /symlink .*outside the model folder/, setup: () => fs.symlinkSync(root, path.join(folder, 'linkdir')) },
    { what: 'dangling symlink', path: 'dangling.bin', message: /symlink to a file that does not exist/, setup: () => fs.symlinkSync(path.join(root, 'missing.bin'), path.join(folder, 'dangling.bin')) },
  ];
  for (const c of cases) {
    test(`${c.what}: refused by the reader and the loader, nothing outside opened or fetched`, async () => {
      c.setup?.();
      const shardPath = c.path || secret;
      const file = path.join(folder, `${c.what.replace(/\W+/g, '-')}.json`);
      fs.writeFileSync(file, modelWith(shardPath));
      const opened: string[] = [];
      const realOpen = fs.openSync;
      (fs as { openSync: typeof fs.openSync }).openSync = ((p: fs.PathLike, ...rest: unknown[]) => {
        opened.push(path.resolve(String(p)));
        return (realOpen as (...a: unknown[]) => number)(p, ...rest);
      }) as typeof fs.openSync;
      try {
        assert.throws(() => openModel(file), isError('UNSAFE_PATH', c.message));
      } finally {
        (fs as { openSync: typeof fs.openSync }).openSync = realOpen;
      }
      assert.deepEqual(opened.filter((p) => !p.startsWith(folder + path.sep)), [], 'nothing outside the folder was opened');
      // The loader refuses before fetching any shard.
      if (!c.setup) {
        const fetched: string[] = [];
        const fetch = async (url: string) => { fetched.push(url); return new Response(url.endsWith('model.json') ? modelWith(shardPath) : new Uint8Array(64)); };
        await assert.rejects(loadTfjsArtifacts('https://cdn.example/m/model.json', { fetch }), isError('UNSAFE_PATH', c.message));
        assert.deepEqual(fetched, ['https://cdn.example/m/model.json']);
      }
    });
  }

  test('a shard that is a folder, or missing', () => {
    fs.mkdirSync(path.join(folder, 'adir.bin'), { recursive: true });
    fs.writeFileSync(path.join(folder, 'dir.json'), modelWith('adir.bin'));
    assert.throws(() => openModel(path.join(folder, 'dir.json')), isError('UNSAFE_PATH', /not a regular file/));
    fs.writeFileSync(path.join(folder, 'missing.json'), modelWith('missing.bin'));
    assert.throws(() => openModel(path.join(folder, 'missing.json')), isError('IO', /missing\.bin cannot be opened: ENOENT/));
  });

  test('a plain shard in a subfolder is fine', () => {
    fs.mkdirSync(path.join(folder, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(folder, 'sub', 'w.bin'), new Uint8Array(64));
    fs.writeFileSync(path.join(folder, 'ok.json'), modelWith('./sub//w.bin'));
    assert.equal(openModel(path.join(folder, 'ok.json')).model.weights[0]!.bytes.length, 64);
  });
});

describe('corrupt and truncated model.json', () => {
  const good = JSON.parse(modelWith('w.bin'));
  const variants: Array<{ what: string; json: string | Uint8Array; code: ErrorCode; message: RegExp }> = [
    { what: 'empty file', json: '', code: 'CORRUPT', message: /not valid JSON/ },
    { what: 'cut in half', json: modelWith('w.bin').slice(0, 60), code: 'CORRUPT', message: /not valid JSON.*truncated/ },
    { what: 'invalid UTF-8', json: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), code: 'CORRUPT', message: /UTF-8/ },
    { what: 'a number', json: '42', code: 'CORRUPT', message: /not a JSON object/ },
    { what: 'no topology, no manifest', json: '{"format":"graph-model"}', code: 'CORRUPT', message: /neither modelTopology nor weightsManifest/ },
    { what: 'manifest not an array', json: JSON.stringify({ ...good, weightsManifest: {} }), code: 'CORRUPT', message: /weightsManifest is not an array/ },
    { what: 'group without paths', json: JSON.stringify({ ...good, weightsManifest: [{ weights: [] }] }), code: 'CORRUPT', message: /no "paths" array/ },
    { what: 'path not a string', json: JSON.stringify({ ...good, weightsManifest: [{ paths: [7], weights: [] }] }), code: 'CORRUPT', message: /shard path is not a string/ },
    { what: 'entry without name', json: JSON.stringify({ ...good, weightsManifest: [{ paths: [], weights: [{ shape: [1], dtype: 'float32' }] }] }), code: 'CORRUPT', message: /no name/ },
    { what: 'negative dimension', json: JSON.stringify({ ...good, weightsManifest: [{ paths: [], weights: [{ name: 'w', shape: [-1], dtype: 'float32' }] }] }), code: 'CORRUPT', message: /invalid dimension/ },
    { what: 'fractional dimension', json: JSON.stringify({ ...good, weightsManifest: [{ paths: [], weights: [{ name: 'w', shape: [1.5], dtype: 'float32' }] }] }), code: 'CORRUPT', message: /invalid dimension/ },
    { what: 'huge shape', json: JSON.stringify({ ...good, weightsManifest: [{ paths: [], weights: [{ name: 'w', shape: [2 ** 30, 2 ** 30], dtype: 'float32' }] }] }), code: 'CORRUPT', message: /too large/ },
    { what: 'unknown dtype', json: JSON.stringify({ ...good, weightsManifest: [{ paths: [], weights: [{ name: 'w', shape: [1], dtype: 'int64' }] }] }), code: 'UNSUPPORTED', message: /not a TF.js dtype/ },
    { what: 'uint8 without min', json: JSON.stringify({ ...good, weightsManifest: [{ paths: [], weights: [{ name: 'w', shape: [1], dtype: 'float32', quantization: { dtype: 'uint8', scale: 1 } }] }] }), code: 'CORRUPT', message: /needs a finite "min"/ },
    { what: 'unknown quantization', json: JSON.stringify({ ...good, weightsManifest: [{ paths: [], weights: [{ name: 'w', shape: [1], dtype: 'float32', quantization: { dtype: 'int4' } }] }] }), code: 'UNSUPPORTED', message: /unknown quantization dtype/ },
    { what: 'float16 on int32', json: JSON.stringify({ ...good, weightsManifest: [{ paths: [], weights: [{ name: 'w', shape: [1], dtype: 'int32', quantization: { dtype: 'float16' } }] }] }), code: 'CORRUPT', message: /float16 quantization applies to float32/ },
    { what: 'unknown format, no usable topology', json: JSON.stringify({ format: 'other', modelTopology: { x: 1 } }), code: 'UNSUPPORTED', message: /what kind of TF.js model/ },
  ];
  for (const v of variants) {
    test(`${v.what}: ${v.code}`, () => {
      assert.throws(() => readTfjs(v.json), isError(v.code, v.message));
      assert.throws(() => decodeTfjsArtifacts(v.json, []), isError(v.code, v.message));
    });
  }
});

describe('corrupt and truncated shards', () => {
  const data = new Uint8Array(new Float32Array(16).fill(1.5).buffer);

  test('one byte short: TRUNCATED, naming the weight', () => {
    assert.throws(() => readTfjs(modelWith('w.bin'), { shards: () => data.subarray(0, 63) }), isError('TRUNCATED', /\(at w \(stream byte 0\)\).*64 bytes/));
    assert.throws(() => decodeTfjsArtifacts(modelWith('w.bin'), [data.subarray(0, 63)]), isError('TRUNCATED'));
  });

  test('bytes left over: CORRUPT', () => {
    assert.throws(() => readTfjs(modelWith('w.bin'), { shards: () => concat([data, new Uint8Array(1)]) }), isError('CORRUPT', /more bytes than the manifest describes/));
  });

  test('a string length running past the end: TRUNCATED', () => {
    const json = JSON.stringify({ format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [{ paths: ['s.bin'], weights: [{ name: 's', shape: [2], dtype: 'string' }] }] });
    const bytes = stringBytes(['ok', 'longer']);
    assert.throws(() => readTfjs(json, { shards: () => bytes.subarray(0, bytes.length - 2) }), isError('TRUNCATED', /string element runs past the end/));
    assert.throws(() => readTfjs(json, { shards: () => new Uint8Array(5) }), isError('TRUNCATED', /inside a string tensor/));
  });

  test('a tensor spanning a missing middle shard: TRUNCATED', () => {
    const built = buildModel(everyDtypeWeights(), { shardSize: 100 });
    const shards = JSON.parse(built.json).weightsManifest[0].paths as string[];
    assert.throws(() => readTfjs(built.json, { shards: (p) => (p === shards[3] ? new Uint8Array(0) : built.files.get(p)!) }), isError('TRUNCATED'));
  });
});

describe('corrupt sparse weights', () => {
  // A model whose first weight is one sparse blob and whose small weights share another.
  const big = randomFloats(64 * 64, 11);
  const weights = [
    { name: 'big', shape: [64, 64], dtype: 'float32' as const, bytes: new Uint8Array(big.buffer) },
    ...Array.from({ length: 4 }, (_, i) => ({ name: `small${i}`, shape: [8, 8], dtype: 'float32' as const, bytes: new Uint8Array(randomFloats(64, 20 + i).buffer) })),
  ];
  const built = buildModel(weights);
  const model = readTfjs(built.json, { shards: (p) => built.files.get(p)! });
  const layout = layoutTfjs(model, 'tfjs-sparse', { runBytes: 1024 });
  const files = layoutFiles(layout);
  const json = JSON.parse(new TextDecoder().decode(layout.modelJson));
  const shard = files.get(layout.shards[0]!.path)!;

  function variant(edit: (j: typeof json, bytes: Uint8Array) => Uint8Array | void): { json: string; shard: Uint8Array } {
    const j = structuredClone(json);
    const bytes = shard.slice();
    const replaced = edit(j, bytes);
    return { json: JSON.stringify(j), shard: replaced ?? bytes };
  }
  const both = (v: { json: string; shard: Uint8Array }, code: ErrorCode, message?: RegExp) => {
    assert.throws(() => readTfjs(v.json, { shards: () => v.shard }).weights.forEach((w) => w.denseBytes()), isError(code, message));
    assert.throws(() => decodeTfjsArtifacts(v.json, [v.shard]), isError(code, message));
  };

  test('the layout has a single blob and a shared blob, and both decode', () => {
    const entries = json.weightsManifest[0].weights;
    assert.equal(entries[0].dtype, 'prunepack-sparse/2');
    assert.equal(entries[1].prunepack.count, undefined);
    assert.equal(entries[2].prunepack.count, 4);
    assert.deepEqual(entries.slice(3).map((e: { prunepack: { part: number } }) => e.prunepack.part), [1, 2, 3]);
    const back = readTfjs(layout.modelJson, { shards: () => shard });
    back.weights.forEach((w, i) => assert.ok(Buffer.from(w.denseBytes()).equals(Buffer.from(weights[i]!.bytes))));
  });

  test('a flipped byte in a blob: CORRUPT (checksum)', () => both(variant((_j, b) => { b[100]! ^= 0x40; }), 'CORRUPT', /checksum mismatch/));
  test('a blob cut short (byteLength too large): TRUNCATED', () => both(variant((j) => { j.weightsManifest[0].weights[1].prunepack.byteLength += 5; }), 'TRUNCATED'));
  test('a shared blob that lost a part: CORRUPT', () => both(variant((j) => { delete j.weightsManifest[0].weights[4].prunepack; }), 'CORRUPT', /next entries are not its parts/));
  test('a part without its head: CORRUPT', () => both(variant((j) => { j.weightsManifest[0].weights[1].prunepack = { encoding: 'prunepack-sparse/2', byteLength: 0, part: 1 }; }), 'CORRUPT'));
  test('a blob whose shape is not the weight\'s: CORRUPT', () => both(variant((j) => { j.weightsManifest[0].weights[1].shape = [32, 128]; }), 'CORRUPT', /does not match/));
  test('the sentinel anywhere but first: CORRUPT', () => both(variant((j) => { j.weightsManifest[0].weights.push(j.weightsManifest[0].weights.shift()); }), 'CORRUPT', /sentinel/));
  test('a newer encoding: UNSUPPORTED', () => both(variant((j) => { j.weightsManifest[0].weights[1].prunepack.encoding = 'prunepack-sparse/3'; }), 'UNSUPPORTED', /newer prunepack/));
  test('two versions in one manifest: CORRUPT', () => both(variant((j) => { j.weightsManifest[0].weights[1].prunepack.encoding = 'prunepack-sparse/1'; }), 'CORRUPT', /mixes two versions/));
  test('a shift on a float32 weight: CORRUPT', () => both(variant((j) => { j.weightsManifest[0].weights[1].prunepack.shift = 3; }), 'CORRUPT', /only uint8\/uint16-quantized weights can have a shift/));
  test('a version 1 model (written before shifts existed) still decodes', () => {
    const v1 = variant((j) => {
      j.weightsManifest[0].weights[0].dtype = 'prunepack-sparse/1';
      for (const e of j.weightsManifest[0].weights.slice(1)) e.prunepack.encoding = 'prunepack-sparse/1';
    });
    const back = readTfjs(v1.json, { shards: () => v1.shard });
    back.weights.forEach((w, i) => assert.ok(Buffer.from(w.denseBytes()).equals(Buffer.from(weights[i]!.bytes)), w.name));
    const artifacts = decodeTfjsArtifacts(v1.json, [v1.shard]);
    assert.ok(Buffer.from(artifacts.weightData!).equals(Buffer.from(concat(weights.map((w) => w.bytes)))));
  });
  test('a blob on a string weight: CORRUPT', () => both(variant((j) => { j.weightsManifest[0].weights[1].dtype = 'string'; }), 'CORRUPT', /string weights cannot be stored sparse/));
});

describe('writes are all-or-nothing', () => {
  const weights = everyDtypeWeights();
  const built = buildModel(weights);
  const model = readTfjs(built.json, { shards: (p) => built.files.get(p)! });
  const listing = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : null);

  test('a failing check leaves no new folder and no staging folder behind', async () => {
    const out = path.join(root, 'out-new');
    await assert.rejects(writeTfjsFiles(model, out, { target: 'tfjs-sparse', shardSize: 100, check: () => { throw new PrunepackError('VERIFY_FAILED', 'refused by the test'); } }), isError('VERIFY_FAILED'));
    assert.equal(listing(out), null);
    assert.deepEqual(listing(root)!.filter((n) => n.includes('prunepack')), []);
  });

  test('into an existing folder: a failing check leaves the old model untouched', async () => {
    const out = path.join(root, 'out-existing');
    writeFolder(out, new Map([['model.json', new TextEncoder().encode('{"old":true}')], ['group1-shard1of1.bin', new Uint8Array([1, 2, 3])]]));
    const before = listing(out);
    await assert.rejects(writeTfjsFiles(model, out, { target: 'tfjs', force: true, check: () => { throw new Error('no'); } }));
    assert.deepEqual(listing(out), before);
    assert.equal(fs.readFileSync(path.join(out, 'model.json'), 'utf8'), '{"old":true}');
    // Without force an existing model.json is refused; with force it is replaced, check passing.
    await assert.rejects(writeTfjsFiles(model, out, { target: 'tfjs' }), isError('INVALID_ARGUMENT', /exists/));
    const written = await writeTfjsFiles(model, out, { target: 'tfjs', force: true, shardSize: 1000, check: (staged) => { openModel(staged); } });
    assert.ok(written.files.length > 2);
    assert.deepEqual(listing(out)!.filter((n) => n.includes('prunepack')), []);
    const back = openModel(written.modelJsonPath).model;
    back.weights.forEach((w, i) => assert.ok(Buffer.from(w.bytes).equals(Buffer.from(weights[i]!.bytes))));
  });

  test('never replaces a file of the input model; a .json output names its shards after itself', async () => {
    const input = path.join(root, 'in');
    writeFolder(input, built.files);
    const opened = openModel(path.join(input, 'model.json'));
    await assert.rejects(writeTfjsFiles(opened.model, path.join(input, 'copy.json'), { target: 'tfjs', shardName: () => 'g1-shard1of1.bin', protect: [path.join(input, 'model.json'), path.join(input, 'g1-shard1of1.bin')] }),
      isError('INVALID_ARGUMENT', /replace a file of the input model/));
    const ok = await writeTfjsFiles(opened.model, path.join(input, 'copy.json'), { target: 'tfjs', protect: [path.join(input, 'model.json')] });
    assert.deepEqual(ok.files.map((f) => path.basename(f.path)), ['copy.json', 'copy-group1-shard1of1.bin']);
  });

  test('the shards a model was read from are its companionFiles, and no write replaces them (no protect option needed)', async () => {
    // a.json's shard has the name a model.json written into the same folder gives its first shard.
    const input = path.join(root, 'in-shared-names');
    const shard = concat(weights.map((w) => w.bytes));
    const json = JSON.parse(built.json);
    json.weightsManifest[0].paths = ['group1-shard1of1.bin'];
    writeFolder(input, new Map([['a.json', new TextEncoder().encode(JSON.stringify(json))], ['group1-shard1of1.bin', shard]]));
    fs.symlinkSync('group1-shard1of1.bin', path.join(input, 'linked.bin'));
    const { model: opened } = openModel(path.join(input, 'a.json'));
    assert.deepEqual(opened.companionFiles, [fs.realpathSync(path.join(input, 'group1-shard1of1.bin'))]);
    for (const target of ['tfjs', 'tfjs-sparse'] as const) {
      await assert.rejects(writeTfjsFiles(opened, input, { target }), isError('INVALID_ARGUMENT', /would replace a file of the input model/));
      await assert.rejects(writeTfjsFiles(opened, input, { target, force: true, shardName: () => 'linked.bin' }), isError('INVALID_ARGUMENT', /would replace a file of the input model/));
    }
    assert.ok(Buffer.from(fs.readFileSync(path.join(input, 'group1-shard1of1.bin'))).equals(Buffer.from(shard)), 'input shard bytes unchanged');
    assert.deepEqual(listing(input), ['a.json', 'group1-shard1of1.bin', 'linked.bin']);
    // A model read from memory has no companion files.
    assert.equal(model.companionFiles, undefined);
  });
});
