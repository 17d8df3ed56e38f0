import { FteError } from '../core/errors.ts';

export type Color = 'green' | 'yellow' | 'red' | 'dim' | 'bold';

const CODES: Record<Color, [number, number]> = {
  green: [32, 39],
  yellow: [33, 39],
  red: [31, 39],
  dim: [2, 22],
  bold: [1, 22],
};

/** Colour only a terminal, and never when NO_COLOR is set (https://no-color.org); FORCE_COLOR forces it. */
export function colorEnabled(stream: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '') return false;
  if (env['FORCE_COLOR'] !== undefined && env['FORCE_COLOR'] !== '0') return true;
  return stream.isTTY === true;
}

export function paint(color: Color, text: string, enabled: boolean): string {
  if (!enabled) return text;
  const [open, close] = CODES[color];
  return `\u001b[${open}m${text}\u001b[${close}m`;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Exit codes: 0 success, 1 a failure while working, 2 bad input (usage, config, arguments). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {
  readonly code = 'USAGE';
}

/** Report an error the way the command was asked to speak: JSON on stderr with --json, else one readable line. */
export function reportError(err: unknown, json: boolean): number {
  const ownCode = err instanceof Error && 'code' in err && typeof err.code === 'string' && /^[A-Z][A-Z_]+$/.test(err.code) ? err.code : null;
  const code = err instanceof FteError || err instanceof UsageError ? err.code : (ownCode ?? 'INTERNAL');
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stderr.write(`${JSON.stringify({ error: { code, message } })}\n`);
  else process.stderr.write(`fte: ${message}\n`);
  if (code === 'INTERNAL' && !json && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return err instanceof UsageError || code === 'CONFIG_INVALID' || code === 'SINCE_INVALID' || code === 'INVALID_TASK_ID'
    ? EXIT_USAGE
    : EXIT_FAILURE;
}
