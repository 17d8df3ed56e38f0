import { main } from '../../lib/cli/main.ts';

/**
 * Run the real CLI (lib/cli/main.ts, the code bin/fte.js runs) in this process, capturing what it writes. Environment
 * overrides apply for the length of the call. In-process rather than spawned: a spawn pays the TypeScript loader's
 * start-up each time, and the commands under test do not depend on being a separate process.
 */

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

type Write = typeof process.stdout.write;

export async function runCli(args: readonly string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const originalOut = process.stdout.write;
  const originalErr = process.stderr.write;
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  const capture = (append: (text: string) => void): Write =>
    ((chunk: string | Uint8Array) => {
      append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    }) as Write;
  process.stdout.write = capture((t) => (stdout += t));
  process.stderr.write = capture((t) => (stderr += t));
  try {
    const code = await main(['node', 'fte', ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = originalOut;
    process.stderr.write = originalErr;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Colour off unless a test asks for it: the captured stream is no terminal, but FORCE_COLOR may be set around us. */
export const PLAIN = { NO_COLOR: '1', FORCE_COLOR: undefined };
