import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TimeWindow } from '../app/reads.ts';
import type { ApiReads } from '../api/backend.ts';
import { ApiClient, ApiUnavailableError } from '../api/client.ts';
import type { ApiClientAuth } from '../api/client.ts';
import { SigV4RegionError, isExecuteApiUrl, regionForEndpoint } from '../api/sigv4.ts';
import type { Config } from '../core/config.ts';
import { STATE_DIR } from '../core/vault-layout.ts';
import { openLocalReads } from '../local/api-backend.ts';
import { loadConfig } from '../local/config-file.ts';
import { API_TOKEN_FILE, readApiDiscovery } from '../local/http-server.ts';
import { UsageError } from './output.ts';
import { resolveVault } from './vault-option.ts';

/**
 * Where the observability commands (metrics, health, queue, dashboard) read from, in this order:
 *
 * 1. `--endpoint URL` — any fte API (another machine's, the cloud's): with `--token` or `$FTE_API_TOKEN`, or — for the
 *    cloud API, chosen by its execute-api host name or `--auth sigv4` — signed with SigV4 from the AWS credential chain;
 * 2. the vault's running orchestrator, when `.fte/api.json` names a live process — its figures include what only that
 *    process knows (its own CPU and memory) and reading through it keeps the CLI off the database;
 * 3. the vault's store directly, read-only — no orchestrator needs to run.
 *
 * When the advertised API stops answering (the orchestrator just exited), reads fall back to the store rather than
 * fail: the store is the truth either way.
 */

export interface ReadSourceOptions {
  vault?: string;
  config?: string;
  endpoint?: string;
  token?: string;
  /** `token` or `sigv4`; by default sigv4 for an API Gateway host (`*.execute-api.<region>.amazonaws.com`), else token. */
  auth?: string;
}

export interface CliReads {
  readonly reads: ApiReads;
  /** The settings of the vault read from, or the defaults for a remote endpoint without one. */
  readonly config: Config;
  /** Where the figures come from, for humans: the API URL or the vault folder. */
  readonly describe: () => string;
  close(): Promise<void>;
}

export function checkedEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UsageError(`--endpoint ${JSON.stringify(endpoint)} is not a URL (e.g. http://127.0.0.1:8787)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--endpoint must be an http:// or https:// URL');
  return url.toString();
}

/**
 * How to authenticate to `--endpoint`. The cloud API refuses anything unsigned, so its execute-api host name picks
 * SigV4 by itself; `--auth` decides for a custom domain in front of it (or forces a bearer token).
 */
export function endpointAuth(
  endpoint: string,
  options: Pick<ReadSourceOptions, 'auth' | 'token'>,
  env: NodeJS.ProcessEnv = process.env,
): ApiClientAuth | undefined {
  const mode = options.auth ?? (isExecuteApiUrl(endpoint) ? 'sigv4' : 'token');
  if (mode === 'token') {
    const token = options.token ?? env['FTE_API_TOKEN'];
    return token === undefined || token === '' ? undefined : { kind: 'token', token };
  }
  if (mode !== 'sigv4') throw new UsageError(`--auth must be token or sigv4, not ${JSON.stringify(mode)}`);
  try {
    return { kind: 'sigv4', region: regionForEndpoint(endpoint, env) };
  } catch (err) {
    if (err instanceof SigV4RegionError) throw new UsageError(err.message);
    throw err;
  }
}

/** Reads through `primary` until it is unreachable, then through `fallback()` for good. */
class FallbackReads implements ApiReads {
  private current: ApiReads;
  private opened: { reads: ApiReads; close(): Promise<void> } | null = null;
  private usingFallback = false;

  constructor(
    primary: ApiReads,
    private readonly fallback: () => { reads: ApiReads; close(): Promise<void> },
  ) {
    this.current = primary;
  }

  get fellBack(): boolean {
    return this.usingFallback;
  }

  private async call<T>(use: (reads: ApiReads) => Promise<T>): Promise<T> {
    try {
      return await use(this.current);
    } catch (err) {
      if (this.usingFallback || !(err instanceof ApiUnavailableError)) throw err;
      this.opened = this.fallback();
      this.current = this.opened.reads;
      this.usingFallback = true;
      return use(this.current);
    }
  }

  status = () => this.call((r) => r.status());
  queue = () => this.call((r) => r.queue());
  metrics = (window: TimeWindow) => this.call((r) => r.metrics(window));
  health = () => this.call((r) => r.health());
  dashboard = (window: TimeWindow) => this.call((r) => r.dashboard(window));
  task = (id: string) => this.call((r) => r.task(id));
  prometheus = () => this.call((r) => r.prometheus());

  async close(): Promise<void> {
    await this.opened?.close();
  }
}

function readToken(stateDir: string): string | null {
  try {
    return readFileSync(join(stateDir, API_TOKEN_FILE), 'utf8').trim() || null;
  } catch {
    return null;
  }
}

export function openCliReads(options: ReadSourceOptions, env: NodeJS.ProcessEnv = process.env): CliReads {
  if (options.endpoint !== undefined) {
    const baseUrl = checkedEndpoint(options.endpoint);
    const vaultValue = options.vault ?? env['FTE_VAULT'];
    const vault = vaultValue !== undefined && vaultValue !== '' && existsSync(vaultValue) ? vaultValue : undefined;
    const { config } = loadConfig({ configPath: options.config, vault, env });
    const auth = endpointAuth(baseUrl, options, env);
    const client = new ApiClient({ baseUrl, ...(auth !== undefined ? { auth } : {}) });
    return { reads: client, config, describe: () => baseUrl, close: async () => {} };
  }

  const vault = resolveVault(options.vault, env);
  const { config } = loadConfig({ configPath: options.config, vault, env });
  const stateDir = join(vault, STATE_DIR);
  const discovery = readApiDiscovery(stateDir);
  const token = discovery === null ? null : readToken(stateDir);
  if (discovery !== null && token !== null) {
    const client = new ApiClient({ baseUrl: discovery.url, token, timeoutMs: 5_000 });
    const reads = new FallbackReads(client, () => openLocalReads(vault, config));
    return {
      reads,
      config,
      describe: () => (reads.fellBack ? vault : `${discovery.url} (orchestrator pid ${discovery.pid})`),
      close: () => reads.close(),
    };
  }
  const local = openLocalReads(vault, config);
  return { reads: local.reads, config, describe: () => vault, close: () => local.close() };
}

export async function withCliReads<T>(options: ReadSourceOptions, use: (source: CliReads) => Promise<T>): Promise<T> {
  const source = openCliReads(options);
  try {
    return await use(source);
  } finally {
    await source.close();
  }
}
