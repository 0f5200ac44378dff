import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run compiled from dist/test/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function repoPath(...parts: string[]): string {
  return path.join(ROOT, ...parts);
}

/** Every .tflite shipped in the three MediaPipe dev dependencies. */
export function mediapipeModels(): string[] {
  const out: string[] = [];
  for (const pkg of ['face_detection', 'hands', 'selfie_segmentation']) {
    const dir = repoPath('node_modules', '@mediapipe', pkg);
    for (const name of fs.readdirSync(dir)) if (name.endsWith('.tflite')) out.push(path.join(dir, name));
  }
  return out.sort();
}

export function sampleModels(): string[] {
  const dir = repoPath('samples');
  return fs.readdirSync(dir).filter((n) => n.endsWith('.tflite')).map((n) => path.join(dir, n)).sort();
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? '/tmp'), `prunepack-${prefix}-`));
}

/** JSON of a value with typed arrays and bigints normalised, for structural comparison. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (ArrayBuffer.isView(v)) return `${v.constructor.name === 'Buffer' ? 'Uint8Array' : v.constructor.name}[${Array.from(v as unknown as ArrayLike<number>).join(',')}]`;
    return v;
  });
}
