import type { ApiActions } from '../api/backend.ts';
import { ApiClient } from '../api/client.ts';
import { LocalActions } from '../local/api-backend.ts';
import { loadConfig } from '../local/config-file.ts';
import { checkedEndpoint, endpointAuth } from './read-source.ts';
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

export interface ActionOptions extends VaultOptions {
  endpoint?: string;
  token?: string;
  auth?: string;
}

/**
 * The state-changing API actions for one CLI command: against `--endpoint` (another machine's orchestrator, or the
 * cloud API, SigV4-signed) through the HTTP client, else on the vault through the same LocalActions the local API
 * runs — so `fte approve` means the same thing whichever runtime it reaches.
 */
export async function withActions<T>(options: ActionOptions, use: (actions: ApiActions, where: string) => Promise<T>): Promise<T> {
  if (options.endpoint !== undefined) {
    const baseUrl = checkedEndpoint(options.endpoint);
    const auth = endpointAuth(baseUrl, options);
    return use(new ApiClient({ baseUrl, ...(auth !== undefined ? { auth } : {}) }), baseUrl);
  }
  return withService(options, (service) => use(new LocalActions(service), service.vault.root));
}
