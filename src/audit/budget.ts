/**
 * Size budgets for CI: `--max-bytes N` (the target's output may not be larger) and
 * `--min-ratio R` (dense target bytes / target bytes must be at least R).
 */
import { PrunepackError } from '../errors.js';
import type { AuditBudget, AuditReport } from './report.js';

export interface BudgetOptions {
  maxBytes?: number;
  minRatio?: number;
  /** Target the budgets apply to; default the format's first non-dense target (tflite-sparse, onnx-sparse). */
  target?: string;
}

/** The target budgets refer to when none is named. */
export function defaultBudgetTarget(report: AuditReport): string | null {
  return report.totals.targets.find((t) => !t.dense)?.target ?? report.totals.targets[0]?.target ?? null;
}

/** Checks the budgets against the report; the result is also stored in report.budgets. */
export function checkBudgets(report: AuditReport, options: BudgetOptions): AuditBudget[] {
  if (options.maxBytes === undefined && options.minRatio === undefined) return [];
  const target = options.target ?? defaultBudgetTarget(report);
  const total = report.totals.targets.find((t) => t.target === target);
  if (!target || !total) {
    throw new PrunepackError('INVALID_ARGUMENT', `unknown target for the ${report.format} budget`, {
      expected: report.totals.targets.map((t) => t.target).join(' | ') || 'a target of the format', found: String(target ?? 'none'),
    });
  }
  const budgets: AuditBudget[] = [];
  const failedWriter = total.bytes === null ? `the ${target} writer failed: ${total.error ?? 'unknown error'}` : null;
  if (options.maxBytes !== undefined) {
    const actual = total.bytes;
    const passed = actual !== null && actual <= options.maxBytes;
    budgets.push({
      kind: 'max-bytes', target, limit: options.maxBytes, actual, passed,
      message: failedWriter ?? `${target} output is ${actual} bytes, ${passed ? 'within' : 'over'} the budget of ${options.maxBytes} bytes`
        + (passed ? '' : ` by ${actual! - options.maxBytes} bytes`),
    });
  }
  if (options.minRatio !== undefined) {
    const dense = report.totals.dense.bytes ?? report.totals.input.bytes;
    const actual = total.bytes ? dense / total.bytes : null;
    const passed = actual !== null && actual >= options.minRatio;
    budgets.push({
      kind: 'min-ratio', target, limit: options.minRatio, actual, passed,
      message: failedWriter ?? `${target} ratio ${actual!.toFixed(3)}x (dense ${dense} bytes / ${total.bytes} bytes) is ${passed ? 'at least' : 'below'} the required ${options.minRatio}x`,
    });
  }
  report.budgets = budgets;
  return budgets;
}
