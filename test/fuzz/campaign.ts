/**
 * A fuzz campaign for one format: forks runner processes, hands them input numbers, enforces
 * the per-input time bound (a timed-out input is retried once in a fresh process, with twice
 * the time, before it counts as a hang) and the memory bound, and counts every outcome.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findFormat } from './formats.js';
import { buildInput, defaultFiles, loadFormat, type LoadedFormat } from './exercise.js';
import { hex32, inputSeed } from './random.js';
import type { RunnerInit, RunnerMessage, RunnerResult, RunnerRun } from './runner.js';

export interface CampaignOptions {
  format: string;
  iterations: number;
  /** Campaign seed: input i is built from inputSeed(seed, format, i). */
  seed: number;
  /** Parallel runner processes. */
  jobs: number;
  /** Time bound per input. */
  timeoutMs: number;
  /** Seed files; default: the format's corpus (`corpusSet`). */
  corpus?: string[];
  corpusSet: 'all' | 'ci';
  /** Heap limit of each runner (a fatal out-of-memory counts as an over-allocation). */
  maxHeapMb?: number;
  onProgress?: (summary: FormatSummary) => void;
}

export type ViolationKind = 'escape' | 'hang' | 'over-allocation' | 'crash';

export interface Violation {
  kind: ViolationKind;
  index: number;
  seed: string;
  seedFile?: string;
  steps?: string[];
  detail: string;
  stack?: string;
}

export interface FormatSummary {
  format: string;
  command: string;
  seeds: Array<{ path: string; bytes: number; structureBytes: number }>;
  inputs: number;
  accepted: number;
  rejected: number;
  rejectedByCode: Record<string, number>;
  rejectedByStage: Record<string, number>;
  escapes: number;
  hangs: number;
  overAllocations: number;
  crashes: number;
  /** Inputs that timed out once but finished when retried. */
  slowRetried: number;
  /** Inputs never run because every runner process was gone (the campaign is incomplete). */
  notRun: number;
  violations: Violation[];
  seconds: number;
  slowest: { ms: number; seed: string };
  largestAllocation: { bytes: number; inputBytes: number; seed: string };
  largestPeakRssGrowth: { bytes: number; inputBytes: number; seed: string };
  meanMs: number;
}

/** Dense bytes a model's sparse tensors may expand to: 64 MiB plus 64 times the file size. */
export function expansionLimit(inputBytes: number): number {
  return 64 * 2 ** 20 + 64 * inputBytes;
}

/**
 * The memory an input may use: 64 MiB plus 16 times its size, plus three times the dense size
 * its sparse weights declare (dense arrays, the dense output, its read-back), counted only up to
 * the expansion limit: a reader that expands further has allocated beyond what the input justifies.
 */
export function memoryBound(inputBytes: number, declaredExpansion = 0): number {
  return 64 * 2 ** 20 + 16 * inputBytes + 3 * Math.min(declaredExpansion, expansionLimit(inputBytes));
}

const RUNNER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'runner.js');
const MAX_STORED_VIOLATIONS = 25;
/**
 * Attempts before a slow input counts as a hang, each in a fresh runner with twice the time of the
 * one before (timeoutMs, 2x, 4x): a busy machine (other processes, autogroup scheduling) can stall
 * one run for seconds, a real hang never ends.
 */
const HANG_ATTEMPTS = 3;

interface Task { index: number; seed: number; attempt: number }

class Runner {
  child!: ChildProcess;
  task: Task | undefined;
  timer: NodeJS.Timeout | undefined;
  stderr = '';
  ready!: Promise<RunnerMessage>;
  onMessage: ((m: RunnerMessage) => void) | undefined;
  onExit: ((code: number | null, signal: NodeJS.Signals | null) => void) | undefined;

  constructor(private readonly init: RunnerInit, private readonly maxHeapMb: number) {
    this.start();
  }

  start(): void {
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    this.stderr = '';
    this.child = fork(RUNNER, ['--prunepack-fuzz-runner'], {
      execArgv: ['--expose-gc', `--max-old-space-size=${this.maxHeapMb}`],
      env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.child.stderr!.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-4000); });
    this.ready = new Promise((resolve) => {
      const first = (m: RunnerMessage) => {
        if (m.type === 'ready' || m.type === 'init-error') {
          this.child.off('message', first);
          resolve(m);
        }
      };
      this.child.on('message', first);
      this.child.once("exit", (code, signal) => resolve({ type: "init-error", error: `runner exited during start (exit ${code}, signal ${signal}): ${this.stderr}` }));
    });
    const child = this.child;
    // Events of a process this runner already replaced are ignored.
    child.on('message', (m: RunnerMessage) => { if (child === this.child) this.onMessage?.(m); });
    child.on('exit', (code, signal) => { if (child === this.child) this.onExit?.(code, signal); });
    this.child.send(this.init);
  }

  kill(): void {
    this.onExit = undefined;
    this.onMessage = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

export function campaignCommand(o: Pick<CampaignOptions, 'format' | 'iterations' | 'seed' | 'corpus' | 'corpusSet'>): string {
  return `npm run fuzz -- --format ${o.format} --iterations ${o.iterations} --seed ${hex32(o.seed)}`
    + `${o.corpus?.length ? ` --corpus ${o.corpus.join(' ')}` : o.corpusSet === 'ci' ? ' --corpus-set ci' : ''}`;
}

export function replayCommand(o: Pick<CampaignOptions, 'format' | 'corpus' | 'corpusSet'>, seed: string): string {
  return `npm run fuzz -- --format ${o.format} --replay ${seed}`
    + `${o.corpus?.length ? ` --corpus ${o.corpus.join(' ')}` : o.corpusSet === 'ci' ? ' --corpus-set ci' : ''}`;
}

export async function runCampaign(options: CampaignOptions): Promise<FormatSummary> {
  const format = findFormat(options.format);
  if (!format) throw new Error(`no fuzz table entry for format ${options.format}`);
  const files = defaultFiles(format, options.corpus, options.corpusSet);
  if (!files.length) throw new Error(`no seed files for ${options.format}`);
  const modelDir = fs.mkdtempSync(path.join(os.tmpdir(), `prunepack-fuzz-${format.id}-`));
  const init: RunnerInit = { type: 'init', format: format.id, files, modelDir };
  const summary: FormatSummary = {
    format: format.id, command: campaignCommand(options), seeds: [], inputs: 0, accepted: 0, rejected: 0,
    rejectedByCode: {}, rejectedByStage: {}, escapes: 0, hangs: 0, overAllocations: 0, crashes: 0, slowRetried: 0, notRun: 0,
    violations: [], seconds: 0, slowest: { ms: 0, seed: '' }, largestAllocation: { bytes: 0, inputBytes: 0, seed: '' },
    largestPeakRssGrowth: { bytes: 0, inputBytes: 0, seed: '' }, meanMs: 0,
  };
  const started = performance.now();
  let totalMs = 0;
  let local: LoadedFormat | undefined;
  /** Steps of an input the runner could not report (hang, crash), rebuilt here. */
  const describe = (seed: number): { seedFile?: string; steps?: string[] } => {
    try {
      local ??= loadFormat(format, files, modelDir);
      const input = buildInput(local, seed);
      return { seedFile: input.seedFile, steps: input.steps };
    } catch (e) {
      return { steps: [`(the input could not be rebuilt: ${(e as Error).message})`] };
    }
  };
  const stored = new Map<ViolationKind, number>();
  const violation = (v: Violation) => {
    // Up to MAX_STORED_VIOLATIONS of each kind: a flood of one kind must not hide another.
    const n = stored.get(v.kind) ?? 0;
    if (n >= MAX_STORED_VIOLATIONS) return;
    stored.set(v.kind, n + 1);
    summary.violations.push(v);
  };

  let next = 0;
  const retries: Task[] = [];
  const take = (): Task | undefined => retries.shift() ?? (next < options.iterations
    ? { index: next, seed: inputSeed(options.seed, format.id, next++), attempt: 1 } : undefined);

  const maxHeapMb = options.maxHeapMb ?? 2048;
  const runners = Array.from({ length: Math.max(1, options.jobs) }, () => new Runner(init, maxHeapMb));
  const first = await runners[0]!.ready;
  if (first.type !== 'ready') {
    runners.forEach((r) => r.kill());
    throw new Error(`fuzz runner failed to start: ${first.type === 'init-error' ? first.error : ''}`);
  }
  summary.seeds = first.seeds;

  const record = (r: RunnerResult) => {
    summary.inputs++;
    totalMs += r.ms;
    const seed = hex32(r.seed);
    if (r.ms > summary.slowest.ms) summary.slowest = { ms: r.ms, seed };
    if (r.allocated > summary.largestAllocation.bytes) summary.largestAllocation = { bytes: r.allocated, inputBytes: r.inputBytes, seed };
    if (r.peakRssGrowth > summary.largestPeakRssGrowth.bytes) summary.largestPeakRssGrowth = { bytes: r.peakRssGrowth, inputBytes: r.inputBytes, seed };
    if (r.kind === 'accepted') summary.accepted++;
    else if (r.kind === 'rejected') {
      summary.rejected++;
      summary.rejectedByCode[r.code!] = (summary.rejectedByCode[r.code!] ?? 0) + 1;
      summary.rejectedByStage[r.stage] = (summary.rejectedByStage[r.stage] ?? 0) + 1;
    } else {
      summary.escapes++;
      violation({ kind: 'escape', index: r.index, seed, seedFile: r.seedFile, steps: r.steps, detail: `${r.error} (stage ${r.stage})`, stack: r.stack });
    }
    const bound = memoryBound(r.inputBytes, r.expansion);
    const used = Math.max(r.allocated, r.peakRssGrowth);
    if (used > bound) {
      summary.overAllocations++;
      violation({
        kind: 'over-allocation', index: r.index, seed, seedFile: r.seedFile, steps: r.steps,
        detail: `${mib(used)} (heap+ArrayBuffer growth ${mib(r.allocated)}, peak RSS growth ${mib(r.peakRssGrowth)}) for a ${r.inputBytes}-byte input declaring ${mib(r.expansion)} of sparse expansion; bound ${mib(bound)}; outcome ${r.kind} ${r.code ?? ''}`,
      });
    }
  };

  await new Promise<void>((resolve) => {
    let active = runners.length;
    let lastProgress = performance.now();
    const finishRunner = (runner: Runner) => {
      runner.kill();
      if (--active === 0) resolve();
    };
    const dispatch = (runner: Runner) => {
      const task = take();
      if (!task) return finishRunner(runner);
      runner.task = task;
      const timeout = options.timeoutMs * 2 ** (task.attempt - 1);
      runner.timer = setTimeout(() => onTimeout(runner), timeout);
      runner.child.send({ type: 'run', index: task.index, seed: task.seed } satisfies RunnerRun);
    };
    const restart = async (runner: Runner) => {
      let m: RunnerMessage | undefined;
      // A start can fail for reasons outside the input (a build rewriting dist/): keep trying for a minute.
      for (let attempt = 0; attempt < 12; attempt++) {
        if (attempt) await new Promise((r) => setTimeout(r, Math.min(10_000, 1000 * attempt)));
        runner.kill();
        runner.start();
        attach(runner);
        m = await runner.ready;
        if (m.type === 'ready') return dispatch(runner);
      }
      violation({ kind: 'crash', index: -1, seed: '', detail: `runner failed to restart: ${m?.type === 'init-error' ? m.error : ''}` });
      summary.crashes++;
      finishRunner(runner);
    };
    const onTimeout = (runner: Runner) => {
      const task = runner.task!;
      runner.task = undefined;
      if (task.attempt < HANG_ATTEMPTS) retries.push({ ...task, attempt: task.attempt + 1 });
      else {
        summary.inputs++;
        summary.hangs++;
        const seed = hex32(task.seed);
        violation({ kind: 'hang', index: task.index, seed, ...describe(task.seed), detail: `no result within ${options.timeoutMs} ms, nor within ${2 * options.timeoutMs} and ${4 * options.timeoutMs} ms when retried in fresh processes` });
      }
      void restart(runner);
    };
    const attach = (runner: Runner) => {
      runner.onMessage = (m) => {
        if (m.type !== 'result' || !runner.task || m.index !== runner.task.index) return;
        clearTimeout(runner.timer);
        if (runner.task.attempt > 1) summary.slowRetried++;
        runner.task = undefined;
        record(m);
        if (options.onProgress && performance.now() - lastProgress > 5000) {
          lastProgress = performance.now();
          summary.seconds = (performance.now() - started) / 1000;
          options.onProgress(summary);
        }
        dispatch(runner);
      };
      runner.onExit = (code, signal) => {
        const task = runner.task;
        // Exits while idle or starting are handled by the start-up promise and by dispatch.
        if (!task) return;
        runner.task = undefined;
        clearTimeout(runner.timer);
        summary.inputs++;
        const seed = hex32(task.seed);
        const oom = /heap out of memory|Reached heap limit|allocation failed/i.test(runner.stderr);
        if (oom) summary.overAllocations++;
        else summary.crashes++;
        violation({
          kind: oom ? 'over-allocation' : 'crash', index: task.index, seed, ...describe(task.seed),
          detail: `runner died (exit ${code}, signal ${signal})${oom ? ' out of memory' : ''}: ${runner.stderr.trim().split('\n').slice(-6).join(' | ')}`,
        });
        void restart(runner);
      };
    };
    for (const runner of runners) {
      attach(runner);
      void runner.ready.then((m) => {
        if (m.type === 'ready') dispatch(runner);
        else finishRunner(runner);
      });
    }
  });

  runners.forEach((r) => r.kill());
  fs.rmSync(modelDir, { recursive: true, force: true });
  summary.notRun = options.iterations - summary.inputs;
  summary.seconds = (performance.now() - started) / 1000;
  summary.meanMs = summary.inputs ? totalMs / summary.inputs : 0;
  return summary;
}

/** Violations, counting inputs that never ran (every runner gone) as failures too. */
export function violationCount(s: FormatSummary): number {
  return s.escapes + s.hangs + s.overAllocations + s.crashes + s.notRun;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export function formatSummary(s: FormatSummary, options: Pick<CampaignOptions, 'format' | 'corpus' | 'corpusSet'>): string {
  const codes = Object.entries(s.rejectedByCode).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ') || 'none';
  const stages = Object.entries(s.rejectedByStage).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ') || 'none';
  const lines = [
    `format ${s.format}: ${s.inputs} inputs from ${s.seeds.length} seed files in ${s.seconds.toFixed(1)} s (mean ${s.meanMs.toFixed(1)} ms per input)`,
    `  command: ${s.command}`,
    `  accepted: ${s.accepted}`,
    `  rejected: ${s.rejected} (by code: ${codes}; by stage: ${stages})`,
    ...(s.notRun ? [`  INCOMPLETE: ${s.notRun} inputs never ran (every runner process failed to restart; see the crashes)`] : []),
    `  escapes: ${s.escapes}, hangs: ${s.hangs}, over-allocations: ${s.overAllocations}, crashes: ${s.crashes}` +
      `${s.slowRetried ? ` (${s.slowRetried} inputs timed out once and finished when retried)` : ''}`,
    `  slowest input: ${s.slowest.ms.toFixed(0)} ms (${s.slowest.seed}); largest heap+ArrayBuffer growth: ${mib(s.largestAllocation.bytes)} for ${s.largestAllocation.inputBytes} bytes (${s.largestAllocation.seed}); largest peak RSS growth: ${mib(s.largestPeakRssGrowth.bytes)} (${s.largestPeakRssGrowth.seed || 'none'})`,
  ];
  for (const v of s.violations) {
    lines.push(`  VIOLATION ${v.kind} input ${v.index} seed ${v.seed}${v.seedFile ? ` from ${path.basename(v.seedFile)}` : ''}: ${v.detail}`);
    if (v.steps?.length) lines.push(`    mutations: ${v.steps.join('; ')}`);
    if (v.stack) lines.push(`    ${v.stack.split('\n').slice(0, 6).join('\n    ')}`);
    if (v.seed) lines.push(`    reproduce: ${replayCommand(options, v.seed)}`);
  }
  const listed = violationCount(s) - s.notRun - s.violations.length;
  if (listed > 0) lines.push(`  (${listed} more violations not listed: at most ${MAX_STORED_VIOLATIONS} of each kind are)`);
  return lines.join('\n');
}
