// Waiting on a condition instead of a fixed sleep, for tests and scripts alike.

export type WaitOptions = {
  /** Named in the error when the time runs out. */
  what?: string;
  timeoutMs?: number;
  intervalMs?: number;
  /** A child process the condition depends on: fail at once if it exits meanwhile. */
  proc?: { child: { exitCode: number | null; signalCode: NodeJS.Signals | null } };
};

/** Resolves once `check` holds, polling every 20 ms; throws after `timeoutMs` (30 s). */
export async function waitFor(check: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<void> {
  const { what = 'a condition', timeoutMs = 30_000, intervalMs = 20 } = options;
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    const child = options.proc?.child;
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`the service exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
