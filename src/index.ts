/**
 * prunepack's public library API. Everything the command line does is one call here.
 */
import { plugins } from '../converters/index.js';
import { detectPlugin } from './detect.js';
import { PrunepackError } from './errors.js';
import { openPagedSource, readModelSource } from './io/files.js';
import type { Model } from './model/types.js';
import type { FormatPlugin, ModelSource } from './plugin.js';

export { PrunepackError, isPrunepackError, type ErrorCode } from './errors.js';
export type { Model, WeightTensor, WeightConsumer, Quantization } from './model/types.js';
export type { DType } from './model/dtype.js';
export type { FormatPlugin, FormatDescriptor, ModelSource } from './plugin.js';
export { inspectModel, type InspectReport, type InspectWeight } from './inspect.js';
export { countZeros } from './model/zeros.js';
export { plugins } from '../converters/index.js';
export { planPrune, defaultPruneSelection, type PruneOptions, type PruneResult } from './prune.js';
import { planPrune, type PruneOptions, type PruneResult } from './prune.js';

/** Reads a model from bytes (format detected from magic bytes, then `path`'s extension). */
export function readModel(source: ModelSource): { model: Model; plugin: FormatPlugin } {
  const plugin = detectPlugin(plugins, source.bytes, source.path);
  return { model: plugin.read(source), plugin };
}

export interface OpenOptions {
  /**
   * Read the file in pages instead of whole (plugins that support it: TFLite): the model's
   * structure is read, weights stay on disk until used and `WeightTensor.release()` drops them
   * again, so a caller walking the weights one at a time holds about one weight. Other formats
   * are read whole. Default false.
   */
  paged?: boolean;
}

/** Formats whose plugin reads a paged source (ModelSource.paged). */
const PAGED_FORMATS = new Set(['tflite']);

/** Reads a model file from disk. */
export function openModel(file: string, options: OpenOptions = {}): { model: Model; plugin: FormatPlugin; source: ModelSource } {
  if (options.paged) {
    const paged = openPagedSource(file);
    const plugin = detectPlugin(plugins, paged.bytes, file);
    if (PAGED_FORMATS.has(plugin.id)) return { model: plugin.read(paged), plugin, source: paged };
    paged.paged?.close();
  }
  const source = readModelSource(file);
  return { ...readModel(source), source };
}

/** Writes `model` for `target` using the plugin that read it. */
export function writeModel(model: Model, target: string): Uint8Array {
  const plugin = plugins.find((p) => p.id === model.format);
  const writer = plugin?.targets[target];
  if (!plugin || !writer) {
    const available = plugin ? Object.keys(plugin.targets).join(', ') : 'none';
    throw new PrunepackError('UNSUPPORTED', `cannot write a ${model.format} model as ${target}`, {
      expected: `one of: ${available}`, found: target,
    });
  }
  return writer(model);
}

function pluginFor(model: Model): FormatPlugin {
  const plugin = plugins.find((p) => p.id === model.format);
  if (!plugin) throw new PrunepackError('UNSUPPORTED', `no plugin for format ${model.format}`);
  return plugin;
}

/**
 * One-shot magnitude pruning (no fine-tuning: accuracy is not preserved). Returns a new model
 * in the same format with the selected weights pruned, and a per-weight report.
 */
export function pruneModel(model: Model, options: PruneOptions): { model: Model; results: PruneResult[] } {
  const { replacements, results } = planPrune(model, options);
  return { model: pluginFor(model).withWeights(model, replacements), results };
}

export { auditModel, renderAuditText, renderAuditHtml, checkBudgets, type AuditOptions } from './audit/index.js';
export type { AuditReport } from './audit/report.js';
export { compareModelWeights, matchWeights, type WeightComparison, type WeightCompareOptions } from './verify/weights.js';
