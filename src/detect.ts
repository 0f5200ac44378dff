import { PrunepackError } from './errors.js';
import type { FormatPlugin } from './plugin.js';

/** Picks the plugin for a file: magic bytes first, then the file extension. */
export function detectPlugin(plugins: readonly FormatPlugin[], bytes: Uint8Array, file?: string): FormatPlugin {
  const head = bytes.subarray(0, 64);
  const byMagic = plugins.find((p) => p.sniff(head));
  if (byMagic) return byMagic;
  const lower = file?.toLowerCase() ?? '';
  const byExtension = plugins.find((p) => p.extensions.some((e) => lower.endsWith(e)));
  if (byExtension) return byExtension;
  const firstBytes = Array.from(bytes.subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new PrunepackError('UNKNOWN_FORMAT', `${file ?? 'input'} is not a model format prunepack reads`, {
    location: 'byte 0',
    expected: plugins.map((p) => `${p.name} (${p.extensions.join(', ')})`).join(' or '),
    found: bytes.length ? `first bytes ${firstBytes}` : 'an empty file',
  });
}
