/**
 * Polls `probe` every `pollMs` until it returns something other than undefined, and returns that.
 * A probe that throws counts as "not yet" (the last error is in the timeout's message): the
 * integration tests wait through elections, restarts and forwarding this way.
 */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, pollMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (${String(last)})`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
