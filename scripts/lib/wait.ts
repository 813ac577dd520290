// Waiting on a condition instead of a fixed sleep, for tests and scripts alike.

export type WaitOptions = {
  /** Named in the error when the time runs out. */
  what?: string;
  timeoutMs?: number;
  /** 0 looks again on every turn of the event loop, for a condition a socket event sets. */
  intervalMs?: number;
  /** A child process the condition depends on: fail at once if it exits meanwhile. */
  proc?: { child: { exitCode: number | null; signalCode: NodeJS.Signals | null } };
  /** Appended to the error, e.g. the child's output so far. */
  explain?: () => string;
};

/** Resolves once `check` holds, polling every 20 ms; throws after `timeoutMs` (30 s). */
export async function waitFor(check: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<void> {
  const { what = 'a condition', timeoutMs = 30_000, intervalMs = 20 } = options;
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    const child = options.proc?.child;
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw failure(`the process exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}`, options);
    }
    if (Date.now() > deadline) throw failure(`timed out after ${timeoutMs} ms waiting for ${what}`, options);
    await new Promise((r) => (intervalMs > 0 ? setTimeout(r, intervalMs) : setImmediate(r)));
  }
}

function failure(message: string, options: WaitOptions): Error {
  return new Error(options.explain ? `${message}:\n${options.explain()}` : message);
}
