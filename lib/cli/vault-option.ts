import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from './output.ts';

/** `--vault DIR`, else `$FTE_VAULT`; the folder must exist. */
export function resolveVault(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const value = flag ?? env['FTE_VAULT'];
  if (value === undefined || value === '') throw new UsageError('no vault: pass --vault DIR or set FTE_VAULT');
  const dir = resolve(value);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`vault folder not found: ${dir}`);
  return dir;
}
