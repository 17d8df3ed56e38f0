import { stringify } from 'yaml';
import { loadConfig } from '../../local/config-file.ts';
import { EXIT_OK, printJson } from '../output.ts';

export interface ConfigCheckOptions {
  config?: string;
  vault?: string;
  json?: boolean;
}

/** Validate the settings fte would use and print them with every default filled in. */
export function configCheckCommand(options: ConfigCheckOptions): number {
  const { config, path } = loadConfig({ configPath: options.config, vault: options.vault });
  if (options.json) {
    printJson({ valid: true, source: path, config });
    return EXIT_OK;
  }
  process.stdout.write(`# ${path === null ? 'no config file: every setting is a default' : `valid: ${path}`}\n`);
  process.stdout.write(stringify(config));
  return EXIT_OK;
}
