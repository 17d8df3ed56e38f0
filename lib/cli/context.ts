import { loadConfig } from '../local/config-file.ts';
import { TaskService } from '../local/task-service.ts';
import { resolveVault } from './vault-option.ts';

export interface VaultOptions {
  vault?: string;
  config?: string;
  json?: boolean;
}

/** Open the vault's task service for one CLI command; the caller closes it. */
export function openService(options: VaultOptions): TaskService {
  const vault = resolveVault(options.vault);
  const { config } = loadConfig({ configPath: options.config, vault });
  return TaskService.open(vault, config);
}

export async function withService<T>(options: VaultOptions, use: (service: TaskService) => Promise<T>): Promise<T> {
  const service = openService(options);
  try {
    return await use(service);
  } finally {
    await service.close();
  }
}

/** Who did it, for the history: the local user. */
export function actor(): string {
  return `cli:${process.env['USER'] ?? process.env['USERNAME'] ?? 'unknown'}`;
}
