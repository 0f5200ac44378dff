/**
 * prunepack command line: a thin layer over the library (src/index.ts).
 * Exit codes: 0 ok, 1 models differ / verification failed, 2 usage error,
 * 3 bad or unsupported input, 4 budget missed, 5 I/O or runtime failure.
 */
import { PrunepackError } from '../errors.js';
import { runAudit, AUDIT_HELP } from './audit.js';
import { runConvert, CONVERT_HELP } from './convert.js';
import { runInspect, INSPECT_HELP } from './inspect.js';
import { runPrune, PRUNE_HELP } from './prune.js';
import { runVerify, VERIFY_HELP } from './verify.js';
import { runUnpack, UNPACK_HELP } from './unpack.js';

export const EXIT = { OK: 0, DIFFERENT: 1, USAGE: 2, INPUT: 3, BUDGET: 4, FAILURE: 5 } as const;

const HELP = `prunepack - small, verified sparse encodings for pruned neural networks

Usage: prunepack <command> [options]

Commands:
  inspect MODEL            format, operators and a table of weights (zeros, bytes, sparse or not)
  convert MODEL --to T     write the model for target T and verify it
                           (targets: tflite-sparse, tflite, onnx-sparse, onnx)
  prune MODEL --sparsity S one-shot magnitude pruning for what-ifs (no fine-tuning) -o OUT
  audit MODEL              where the bytes are: zeros, structure, every encoding and target, gzip,
                           the information bound; --html REPORT.html, budgets (exit code 4)
  verify A B [--run]       same weights (and, with --run, same outputs in the runtimes)?
  unpack PACK [-o OUT]     restore the model file(s) of a pack (convert MODEL --to pack)

Options for every command:
  --json                   machine-readable output on stdout
  --verbose                stack traces on errors
  -h, --help               help for a command

Examples:
  prunepack inspect samples/cnn-synthetic-80.tflite
  prunepack inspect model.tflite --json | jq '.weights[0]'
  prunepack convert model.tflite --to tflite-sparse -o model.sparse.tflite
  prunepack convert model.sparse.tflite --to tflite -o model.dense.tflite
  prunepack prune model.tflite --sparsity 0.8 --block 1x4 -o pruned.tflite
  prunepack audit model.tflite --html report.html --max-bytes 300000
  prunepack verify model.tflite model.sparse.tflite --run

Exit codes: 0 ok, 1 models differ, 2 usage error, 3 bad or unsupported input,
4 budget missed, 5 I/O or runtime failure.`;

const COMMANDS: Record<string, { help: string; run: (args: string[]) => Promise<number> }> = {
  inspect: { help: INSPECT_HELP, run: runInspect },
  convert: { help: CONVERT_HELP, run: runConvert },
  prune: { help: PRUNE_HELP, run: runPrune },
  audit: { help: AUDIT_HELP, run: runAudit },
  verify: { help: VERIFY_HELP, run: runVerify },
  unpack: { help: UNPACK_HELP, run: runUnpack },
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '-h' || command === '--help' || command === 'help') {
    const topic = command === 'help' ? COMMANDS[rest[0] ?? ''] : undefined;
    process.stdout.write(`${topic ? topic.help : HELP}\n`);
    return EXIT.OK;
  }
  if (command === '--version' || command === '-V') {
    process.stdout.write('prunepack 0.1.0\n');
    return EXIT.OK;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    process.stderr.write(`prunepack: unknown command "${command}". Run prunepack --help for the list.\n`);
    return EXIT.USAGE;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(`${entry.help}\n`);
    return EXIT.OK;
  }
  return entry.run(rest);
}

export function exitCodeFor(e: PrunepackError): number {
  switch (e.code) {
    case 'INVALID_ARGUMENT': return EXIT.USAGE;
    case 'VERIFY_FAILED': return EXIT.DIFFERENT;
    case 'IO': case 'RUNTIME': return EXIT.FAILURE;
    default: return EXIT.INPUT;
  }
}

/** Runs the command line in this process (the `prunepack` binary). */
export async function cli(): Promise<void> {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(EXIT.OK); });
  const argv = process.argv.slice(2);
  const verbose = argv.includes('--verbose');
  try {
    process.exitCode = await main(argv);
  } catch (e) {
    if (e instanceof PrunepackError) {
      process.stderr.write(`prunepack: ${e.message}\n`);
      if (verbose && e.stack) process.stderr.write(`${e.stack}\n`);
      process.exitCode = exitCodeFor(e);
    } else {
      process.stderr.write(`prunepack: internal error: ${(e as Error)?.message ?? String(e)}\n`);
      process.stderr.write(verbose ? `${(e as Error)?.stack ?? ''}\n` : 'Run again with --verbose for the stack trace, and please report it.\n');
      process.exitCode = EXIT.FAILURE;
    }
  }
}

