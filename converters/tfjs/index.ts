/**
 * The TensorFlow.js plugin: reads model.json (graph-model, layers-model, or a bare weights
 * manifest) with its weight shards, and lays out `tfjs` (dense, re-sharded) and `tfjs-sparse`
 * (docs/tfjs-sparse.md). A TF.js model is several files, so the byte-returning `targets` refuse
 * and point at `layoutTfjs` (in memory) and `writeTfjsFiles` (./files.ts, Node). The browser
 * loader is ./loader.ts (`prunepack/tfjs`). Importing this module needs no Node built-ins.
 */
import { PrunepackError } from '../../src/errors.js';
import type { Model } from '../../src/model/types.js';
import type { FormatPlugin, ModelSource } from '../../src/plugin.js';
import { tfjsFormat } from './format.js';
import { readTfjs, tfjsWithWeights } from './model-view.js';
import type { TfjsTarget } from './write.js';

export { tfjsFormat, sniffTfjs } from './format.js';
export { readTfjs, tfjsDocumentOf, tfjsWithWeights, type TfjsDocument, type TfjsWeight, type TfjsSparsity, type TfjsSparseBlob, type ReadTfjsOptions } from './model-view.js';
export { parseModelJson, SPARSE_ENCODING, SENTINEL_NAME, type ParsedModelJson, type TfjsManifest, type ManifestWeight, type ManifestGroup, type TfjsKind, type TfjsStorage, type TfjsQuantization } from './manifest.js';
export { layoutTfjs, defaultShardName, DEFAULT_SHARD_BYTES, TFJS_TARGETS, type TfjsTarget, type TfjsLayout, type TfjsShardFile, type TfjsPlanEntry, type TfjsWriteOptions } from './write.js';
export { checkShardPath } from './paths.js';
export type { TfjsConsumer } from './consumers.js';

function multiFile(target: TfjsTarget): (model: Model) => Uint8Array {
  return () => {
    throw new PrunepackError('UNSUPPORTED', `a ${target} model is a model.json plus weight shards, not one file`, {
      format: 'tfjs', hint: 'Use writeTfjsFiles(model, folder, { target }) from converters/tfjs/files.js, layoutTfjs(model, target) for the bytes in memory, or prunepack convert --to ' + target,
    });
  };
}

export const tfjsPlugin: FormatPlugin = {
  ...tfjsFormat,
  read: (source: ModelSource) => readTfjs(source.bytes, { path: source.path }),
  withWeights: tfjsWithWeights,
  targets: { tfjs: multiFile('tfjs'), 'tfjs-sparse': multiFile('tfjs-sparse') },
};
