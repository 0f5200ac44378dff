import type { Model } from './model/types.js';

/** Describes a format: how to recognise it. Kept apart from parsing code. */
export interface FormatDescriptor {
  id: string;
  name: string;
  extensions: string[];
  /** True when the first bytes look like this format (magic bytes). */
  sniff(head: Uint8Array): boolean;
}

/** Where a model came from: the bytes, and (for multi-file formats) its path. */
export interface ModelSource {
  bytes: Uint8Array;
  path?: string;
  fileSize?: number;
  readRange?: (offset: number, length: number) => Uint8Array;
  /**
   * Set when the file was opened in pages (`openModel(file, { paged: true })`, src/io/paged.ts):
   * `bytes` is then only the file's first page; a plugin that can read in pages uses `image`
   * (filled on demand by `ensure`) and reads weights with `readRange`. Others read whole files.
   */
  paged?: {
    image: Uint8Array;
    ensure(offset: number, length: number): void;
    readRange(offset: number, length: number): Uint8Array;
    /** Closes the file (when no plugin will read it). */
    close(): void;
  };
}

export interface FormatPlugin extends FormatDescriptor {
  read(source: ModelSource): Model;
  /** Writers by target name; each turns a model read by this plugin into bytes. */
  targets: Record<string, (model: Model) => Uint8Array>;
  /** A copy of `model` whose named weights hold new dense bytes (same dtype and shape). */
  withWeights(model: Model, replacements: ReadonlyMap<string, Uint8Array>): Model;
}
