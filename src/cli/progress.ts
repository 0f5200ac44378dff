/**
 * Progress on stderr for commands that read large models (audit, verify; convert can use it too).
 *
 * The library reports progress through plain callbacks (`ProgressEvent`, no terminal code in
 * src/audit or src/verify); this module turns them into one redrawn line on a TTY. Nothing is
 * printed when stderr is not a TTY (pipes, CI logs), with --quiet, or with TERM=dumb; NO_COLOR
 * only removes the colour, the bar stays.
 *
 * Hook points for other commands:
 *   const progress = createProgress({ quiet: values.quiet });
 *   progress.phase('reading', fileBytes);          // starts a labelled phase with a total
 *   progress.update(doneBytes, 'tensor name');     // or pass progress.callback to a library call
 *   progress.done();                               // clears the line (always call it, also on error)
 */
import { useColor } from './format.js';

/** What library calls report: a phase, how far it is, and the item being worked on. */
export interface ProgressEvent {
  phase: string;
  done: number;
  total: number;
  item?: string;
}

export type ProgressCallback = (event: ProgressEvent) => void;

export interface Progress {
  /** True when something is drawn (TTY, not quiet). */
  readonly active: boolean;
  /** Starts a phase: `label` with `total` units (bytes, weights...). */
  phase(label: string, total: number): void;
  /** Sets the position within the current phase. */
  update(done: number, item?: string): void;
  /** A callback for library calls: each event sets phase and position. */
  readonly callback: ProgressCallback;
  /** Clears the line. Idempotent. */
  done(): void;
}

export interface ProgressOptions {
  quiet?: boolean;
  /** Default process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Least milliseconds between redraws (default 80). */
  intervalMs?: number;
}

const BAR_WIDTH = 24;

/** A progress line on `stream` when it is a TTY and not quiet; a no-op object otherwise. */
export function createProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const active = !options.quiet && stream.isTTY === true && process.env.TERM !== 'dumb';
  const color = active && useColor(stream);
  const interval = options.intervalMs ?? 80;
  let label = '';
  let total = 0;
  let position = 0;
  let item = '';
  let lastDraw = 0;
  let drawn = false;
  let finished = false;

  const draw = (force: boolean) => {
    if (!active || finished) return;
    const now = Date.now();
    if (!force && now - lastDraw < interval) return;
    lastDraw = now;
    const fraction = total > 0 ? Math.min(1, Math.max(0, position / total)) : 0;
    const filled = Math.round(fraction * BAR_WIDTH);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}`;
    const columns = stream.columns || 80;
    const head = `${label} [${color ? `\x1b[36m${bar}\x1b[0m` : bar}] ${(fraction * 100).toFixed(0).padStart(3)}%`;
    const visible = label.length + BAR_WIDTH + 8;
    const room = columns - visible - 2;
    const tail = item && room > 8 ? ` ${item.length > room ? `…${item.slice(item.length - room + 1)}` : item}` : '';
    stream.write(`\r\x1b[2K${head}${tail}`);
    drawn = true;
  };

  const progress: Progress = {
    active,
    phase(newLabel, newTotal) {
      label = newLabel;
      total = newTotal;
      position = 0;
      item = '';
      draw(true);
    },
    update(done, newItem) {
      position = done;
      if (newItem !== undefined) item = newItem;
      draw(false);
    },
    callback: (event) => {
      if (event.phase !== label || event.total !== total) progress.phase(event.phase, event.total);
      progress.update(event.done, event.item);
    },
    done() {
      if (finished) return;
      finished = true;
      if (active && drawn) stream.write('\r\x1b[2K');
    },
  };
  return progress;
}
