// The one way tests run a child process (a CLI, the service, npm): output collected, the end awaited.
// The child gets PATH and the variables given, nothing else: the outer test run's TAP_* and
// TEST_DATABASE_URL would otherwise leak in and change what the child does, as a user's shell never would.
import { spawn, type ChildProcess } from 'node:child_process';

export type Exit = { code: number | null; signal: NodeJS.Signals | null };
export type Run = Exit & { stdout: string; stderr: string };

export type SpawnOptions = {
  /** Added to PATH; give HOME here when the command needs one (npm does). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Sends SIGTERM after this long, so a hung child fails its test instead of stalling the run. */
  timeoutMs?: number;
};

export type Spawned = {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Both streams, interleaved as they arrived (what an operator would see in a terminal). */
  output(): string;
  /** The process ended; its output may still be arriving (from a child it left behind). */
  exited: Promise<Exit>;
  /** The process ended and all of its output has been read. */
  closed: Promise<Run>;
};

export function spawnScript(command: string, args: string[], options: SpawnOptions = {}): Spawned {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: options.timeoutMs,
  });
  let stdout = '';
  let stderr = '';
  let output = '';
  child.stdout!.on('data', (d) => ((stdout += d), (output += d)));
  child.stderr!.on('data', (d) => ((stderr += d), (output += d)));
  // A command that cannot be started (ENOENT, EACCES) rejects both, instead of an unhandled 'error' event.
  const failed = new Promise<never>((_, reject) => child.on('error', reject));
  const exited = Promise.race([failed, new Promise<Exit>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))]);
  const closed = Promise.race([failed, new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))]);
  // Rejections nobody awaits (a test that only needs one of the two) must not crash the run.
  for (const p of [failed, exited, closed]) p.catch(() => {});
  return { child, stdout: () => stdout, stderr: () => stderr, output: () => output, exited, closed };
}

/** Runs a command to its end: exit code or signal, and everything it wrote. */
export function runScript(command: string, args: string[], options: SpawnOptions = {}): Promise<Run> {
  return spawnScript(command, args, options).closed;
}
