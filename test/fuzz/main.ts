/**
 * The fuzz command line:
 *
 *   npm run fuzz -- --format tflite --iterations 100000 [--seed S] [--jobs N] [--timeout-ms MS]
 *                   [--corpus FILES...] [--corpus-set all|ci] [--json FILE]
 *   npm run fuzz -- --format tflite --replay 0x1234abcd [--save input.bin]
 *   npm run fuzz -- --list
 *
 * Without --format, every registered format is fuzzed. Exits 1 on any escape, hang,
 * over-allocation or crash, printing each with its mutations and the command that replays it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FUZZ_FORMATS, pluginFor, registeredFormats } from './formats.js';
import { campaignCommand, formatSummary, memoryBound, runCampaign, violationCount, type FormatSummary } from './campaign.js';
import { buildInput, defaultFiles, exercise, loadFormat } from './exercise.js';
import { hex32 } from './random.js';

const USAGE = `Usage: npm run fuzz -- [--format ID] [--iterations N] [--seed S] [--jobs N] [--timeout-ms MS]
                    [--corpus FILES...] [--corpus-set all|ci] [--json FILE]
       npm run fuzz -- --format ID --replay SEED [--save FILE] [--corpus ...|--corpus-set ci]
       npm run fuzz -- --list`;

function parseSeed(text: string): number {
  const n = text.startsWith('0x') ? Number.parseInt(text.slice(2), 16) : Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`invalid seed ${text}`);
  return n >>> 0;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      format: { type: 'string' }, iterations: { type: 'string' }, seed: { type: 'string' }, jobs: { type: 'string' },
      'timeout-ms': { type: 'string' }, corpus: { type: 'string', multiple: true }, 'corpus-set': { type: 'string' },
      replay: { type: 'string' }, save: { type: 'string' }, json: { type: 'string' }, list: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  // `--corpus a b c`: files after --corpus arrive as positionals.
  const corpus = [...(values.corpus ?? []), ...positionals];
  const corpusSet = values['corpus-set'] === 'ci' ? 'ci' : 'all';
  if (values.list) {
    for (const f of FUZZ_FORMATS) {
      const files = defaultFiles(f, undefined, 'all');
      process.stdout.write(`${f.id}: ${pluginFor(f.id) ? 'registered' : 'plugin not registered (skipped)'}, ${files.length} seed files, dense target ${f.denseTarget}\n`);
    }
    return 0;
  }
  const formats = values.format ? FUZZ_FORMATS.filter((f) => f.id === values.format) : registeredFormats();
  if (values.format && (!formats.length || !pluginFor(values.format))) {
    process.stderr.write(`fuzz: format ${values.format} is ${formats.length ? 'not registered in converters/index.ts' : 'not in the fuzz table (test/fuzz/formats.ts)'}\n`);
    return 2;
  }

  if (values.replay) return replay(formats[0]!.id, parseSeed(values.replay), corpus, corpusSet, values.save);

  const iterations = Number(values.iterations ?? 1000);
  const seed = values.seed ? parseSeed(values.seed) : (Date.now() & 0xffffffff) >>> 0;
  const jobs = Number(values.jobs ?? Math.max(1, Math.min(2, os.availableParallelism())));
  const timeoutMs = Number(values['timeout-ms'] ?? 2000);
  const summaries: FormatSummary[] = [];
  let failed = false;
  for (const f of formats) {
    const options = { format: f.id, iterations, seed, jobs, timeoutMs, corpus, corpusSet } as const;
    process.stderr.write(`fuzz ${f.id}: ${campaignCommand(options)} (${jobs} processes, ${timeoutMs} ms per input)\n`);
    const summary = await runCampaign({
      ...options,
      onProgress: (s) => process.stderr.write(`  ${s.inputs}/${iterations} inputs, ${s.accepted} accepted, ${s.rejected} rejected, ${violationCount(s)} violations, ${s.seconds.toFixed(0)} s\n`),
    });
    summaries.push(summary);
    process.stdout.write(`${formatSummary(summary, options)}\n`);
    if (violationCount(summary) > 0) failed = true;
  }
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify(summaries, null, 2)}\n`);
  process.stdout.write(failed ? 'FAILED: invariant violations above\n' : 'OK: no escapes, hangs, over-allocations or crashes\n');
  return failed ? 1 : 0;
}

/** Runs one input in this process and prints what happened (stack included). */
async function replay(formatId: string, seed: number, corpus: string[], corpusSet: 'all' | 'ci', save: string | undefined): Promise<number> {
  const format = FUZZ_FORMATS.find((f) => f.id === formatId)!;
  await format.load?.();
  const modelDir = fs.mkdtempSync(path.join(os.tmpdir(), `prunepack-fuzz-${formatId}-`));
  try {
    const loaded = loadFormat(format, defaultFiles(format, corpus, corpusSet), modelDir);
    const input = buildInput(loaded, seed);
    process.stdout.write(`input ${hex32(seed)}: ${input.bytes.length} bytes from ${input.seedFile}\n`);
    for (const step of input.steps) process.stdout.write(`  ${step}\n`);
    if (save) {
      fs.writeFileSync(save, input.bytes);
      process.stdout.write(`saved to ${save}\n`);
    }
    const keep: unknown[] = [];
    const before = process.memoryUsage();
    const t0 = performance.now();
    const outcome = exercise(loaded, input, keep);
    const ms = performance.now() - t0;
    const after = process.memoryUsage();
    const grown = after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers;
    const bound = memoryBound(input.bytes.length, outcome.expansion);
    process.stdout.write(`outcome: ${outcome.kind} at stage ${outcome.stage}${outcome.code ? ` (${outcome.code})` : ''} in ${ms.toFixed(1)} ms, `
      + `heap+ArrayBuffer growth ${(grown / 2 ** 20).toFixed(1)} MiB (bound ${(bound / 2 ** 20).toFixed(1)} MiB${grown > bound ? ': OVER THE BOUND' : ''})\n`);
    if (outcome.error) process.stdout.write(`${outcome.error}\n${outcome.stack ?? ''}\n`);
    return outcome.kind === 'escape' || grown > bound ? 1 : 0;
  } finally {
    fs.rmSync(modelDir, { recursive: true, force: true });
  }
}

// `node --test dist/test/` runs every file under test/: only run when started as the fuzz command.
if (!process.env.NODE_TEST_CONTEXT) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
    process.stderr.write(`fuzz: ${e.stack ?? e.message}\n`);
    process.exitCode = 2;
  });
}
