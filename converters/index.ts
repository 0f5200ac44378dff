/** The explicit plugin list. Detection tries magic bytes in this order, then extensions. */
import type { FormatPlugin } from '../src/plugin.js';
import { tflitePlugin } from './tflite/index.js';
import { onnxPlugin } from './onnx/index.js';
import { tfjsPlugin } from './tfjs/index.js';

export const plugins: readonly FormatPlugin[] = [tflitePlugin, onnxPlugin, tfjsPlugin];
