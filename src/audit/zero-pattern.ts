/**
 * Small pictures of where a weight's nonzeros are: the matrix view (analysis.ts) reduced to at
 * most `maxSide` x `maxSide` cells, each cell the share of nonzero elements in it; and a
 * grayscale PNG of such a grid (no dependencies besides fflate, so the HTML report needs no
 * canvas and no network).
 */
import { zlibSync } from 'fflate';
import { ZeroScanner, type DenseWeight } from '../sparsity/analysis.js';
import { crc32 } from '../sparsity/codecs.js';
import type { AuditZeroPattern } from './report.js';

/** Nonzero density per cell of the weight's matrix view (rowAxis as in the analysis). */
export function zeroPatternOf(weight: DenseWeight, rowAxis: number, maxSide = 160): AuditZeroPattern {
  const scanner = new ZeroScanner(weight, rowAxis, 'numeric');
  const { rows, cols } = scanner.view;
  const cellRows = Math.max(1, Math.ceil(rows / maxSide));
  const cellCols = Math.max(1, Math.ceil(cols / maxSide));
  const height = Math.max(1, Math.ceil(rows / cellRows));
  const width = Math.max(1, Math.ceil(cols / cellCols));
  const counts = new Float64Array(width * height);
  const cellOfColumn = new Uint32Array(cols);
  for (let c = 0; c < cols; c++) cellOfColumn[c] = Math.floor(c / cellCols);
  const mask = new Uint8Array(cols);
  for (let r = 0; r < rows; r++) {
    scanner.rowMask(r, mask, 0);
    const base = Math.floor(r / cellRows) * width;
    for (let c = 0; c < cols; c++) counts[base + cellOfColumn[c]!]! += mask[c]!;
  }
  const density = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const h = Math.min(cellRows, rows - y * cellRows);
    for (let x = 0; x < width; x++) {
      const w = Math.min(cellCols, cols - x * cellCols);
      const n = counts[y * width + x]!;
      // Any nonzero shows: a cell with one nonzero in many is 1, never rounded down to "all zero".
      density[y * width + x] = n === 0 ? 0 : Math.max(1, Math.round((255 * n) / (h * w)));
    }
  }
  return { width, height, cellRows, cellCols, density: Buffer.from(density).toString('base64') };
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * An 8-bit grayscale PNG of the pattern: white = all zero, darker = more nonzeros (a cell with
 * any nonzero is at least light gray, so sparse nonzeros stay visible).
 */
export function zeroPatternPng(pattern: AuditZeroPattern): Uint8Array {
  const { width, height } = pattern;
  const density = Buffer.from(pattern.density, 'base64');
  const raw = new Uint8Array((width + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const d = density[y * width + x]!;
      raw[y * (width + 1) + 1 + x] = d === 0 ? 255 : Math.round(200 - (d / 255) * 200);
    }
  }
  const header = new Uint8Array(13);
  const dv = new DataView(header.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  header[8] = 8; // bit depth
  header[9] = 0; // grayscale
  const parts = [
    Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a),
    chunk('IHDR', header),
    chunk('IDAT', zlibSync(raw, { level: 9 })),
    chunk('IEND', new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
