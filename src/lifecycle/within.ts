/**
 * Waits for `work` at most `ms`: true if it settled in time, false if the time ran out first (the
 * work goes on; nobody waits for it). The timer never outlives the wait. `work` must not reject.
 */
export async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeUp = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([work.then(() => true as const), timeUp]);
  } finally {
    clearTimeout(timer);
  }
}
