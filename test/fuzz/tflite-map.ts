/**
 * The structure map of a TFLite seed, taken from the reader itself: while the seed is parsed,
 * CheckedByteBuffer's accessors are wrapped to record the position of every offset, vector
 * length, string length, table and 32/64-bit word the reader touches. Shapes come from the
 * generated accessors afterwards.
 */
import { Model as FbModel } from '../../schemas/generated/tflite/tflite/model.js';
import { CheckedByteBuffer } from '../../converters/tflite/checked-byte-buffer.js';
import type { FormatPlugin } from '../../src/plugin.js';
import { emptySeedMap, type SeedMap } from './mutate.js';
import { weightRanges } from './weights.js';

type Patchable = Record<string, (this: CheckedByteBuffer, ...args: number[]) => unknown>;

export function mapTfliteSeed(plugin: FormatPlugin, bytes: Uint8Array): SeedMap {
  const map = emptySeedMap();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const proto = CheckedByteBuffer.prototype as unknown as Patchable;
  const originals = new Map<string, Patchable[string]>();
  const wrap = (name: string, record: (args: number[]) => void) => {
    const original = proto[name]!;
    originals.set(name, original);
    proto[name] = function (this: CheckedByteBuffer, ...args: number[]) {
      if (this.bytes() === bytes) record(args);
      return original.apply(this, args);
    };
  };
  const inFile = (p: number) => p >= 0 && p + 4 <= bytes.length;
  wrap('readInt32', ([p]) => map.words.push(p!));
  wrap('readInt64', ([p]) => map.words64.push(p!));
  wrap('readUint64', ([p]) => map.words64.push(p!));
  wrap('target', ([p]) => map.offsets.push(p!));
  wrap('__offset', ([bbPos]) => map.tables.push(bbPos!));
  wrap('__vector_len', ([p]) => { if (inFile(p!)) map.lengths.push(p! + view.getUint32(p!, true)); });
  wrap('__string', ([p]) => { if (inFile(p!)) map.strings.push(p! + view.getUint32(p!, true)); });
  let model;
  try {
    model = plugin.read({ bytes, fileSize: bytes.length });
    for (const w of model.weights) w.denseBytes();
  } finally {
    for (const [name, original] of originals) proto[name] = original;
  }
  map.weightRanges = weightRanges(model, bytes);
  collectShapes(bytes, map);
  return map;
}

function collectShapes(bytes: Uint8Array, map: SeedMap): void {
  const bb = new CheckedByteBuffer(bytes);
  const fb = FbModel.getRootAsModel(bb);
  for (let s = 0; s < fb.subgraphsLength(); s++) {
    const sg = fb.subgraphs(s)!;
    for (let t = 0; t < sg.tensorsLength(); t++) {
      const tensor = sg.tensors(t)!;
      for (const slot of [4, 18]) { // shape, shape_signature
        const field = bb.__offset(tensor.bb_pos, slot);
        if (!field) continue;
        const rank = bb.__vector_len(tensor.bb_pos + field);
        if (rank === 0) continue;
        const shape = { pos: bb.__vector(tensor.bb_pos + field), rank };
        map.shapes.push(shape);
        if (slot === 4 && tensor.sparsity()) map.sparseShapes.push(shape);
      }
    }
  }
}
