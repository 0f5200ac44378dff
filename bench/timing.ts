/** The best (shortest) wall time in ms of `repeats` runs of `fn`, awaited one after another. */
export async function bestOf(repeats: number, fn: () => unknown): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}
