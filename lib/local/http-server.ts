import { serve } from '@hono/node-server';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as z from 'zod';
import { createApp } from '../api/app.ts';
import type { ApiBackend } from '../api/backend.ts';
import type { ErrorMapping } from '../api/errors.ts';
import { loadWebAssets, type WebAssets } from '../api/web-assets.ts';

/**
 * The local runtime serves the API on the loopback interface only, behind a bearer token kept in the vault's state
 * folder with owner-only permissions: whoever can read `.fte/` can already read and write the whole store, so the
 * token grants nothing a local user does not have, and nobody else on the machine or the network gets in.
 *
 * While it serves, `.fte/api.json` says where (`{url, pid}`), so CLI commands run beside it read through it.
 */

export const API_TOKEN_FILE = 'api-token';
export const API_DISCOVERY_FILE = 'api.json';
export const LOOPBACK = '127.0.0.1';

export class ApiServerError extends Error {
  constructor(
    readonly code: 'API_PORT_IN_USE' | 'API_LISTEN_FAILED' | 'API_TOKEN_INVALID' | 'API_WEB_ASSETS_MISSING',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiServerError';
  }
}

const TOKEN_PATTERN = /^[0-9a-f]{64}$/;

/**
 * The vault's API token: read it, or create it (32 random bytes as hex) with mode 0600 if there is none. A token file
 * readable by others is narrowed to 0600 rather than trusted as it is.
 */
export function ensureApiToken(stateDir: string): string {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const path = join(stateDir, API_TOKEN_FILE);
  try {
    writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // The umask applies to `mode` at creation, and an existing file may have been copied with looser permissions.
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  const token = readFileSync(path, 'utf8').trim();
  if (!TOKEN_PATTERN.test(token)) {
    throw new ApiServerError('API_TOKEN_INVALID', `${path} does not hold a token (64 hex characters); delete it to have a new one made`);
  }
  return token;
}

/** What `.fte/api.json` says. */
export const apiDiscoverySchema = z.object({
  url: z.url(),
  pid: z.int().positive(),
  startedAt: z.iso.datetime({ offset: true }).optional(),
});
export type ApiDiscovery = z.infer<typeof apiDiscoverySchema>;

/** The running API `.fte/api.json` points at, or null when there is none or its process is gone. */
export function readApiDiscovery(stateDir: string): ApiDiscovery | null {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(stateDir, API_DISCOVERY_FILE), 'utf8'));
  } catch {
    return null;
  }
  const parsed = apiDiscoverySchema.safeParse(raw);
  if (!parsed.success) return null;
  try {
    process.kill(parsed.data.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  return parsed.data;
}

export interface ApiServerOptions {
  readonly backend: ApiBackend;
  /** The vault's `.fte` folder: the token and the discovery file live there. */
  readonly stateDir: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly host?: string;
  /** Write `.fte/api.json` while serving (default true). */
  readonly advertise?: boolean;
  readonly onInternalError?: (err: unknown, mapping: ErrorMapping) => void;
  /** Serve the web dashboard at `GET /` (default true); the files are lib/api/web/. */
  readonly web?: boolean | WebAssets;
}

export interface RunningApiServer {
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly token: string;
  readonly server: Server;
  /** The web dashboard's link, token in the #fragment (never sent to the server); null when no page is served. */
  readonly dashboardUrl: string | null;
  close(): Promise<void>;
}

/**
 * The web dashboard's link for an API at `apiUrl`. The token goes in the #fragment: a browser keeps it to itself (no
 * request line, no server log, no Referer), and the page moves it into sessionStorage and off the address bar.
 */
export function dashboardLink(apiUrl: string, token: string | null, refreshSeconds?: number): string {
  const base = new URL(apiUrl);
  base.pathname = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  base.search = '';
  const fragment = new URLSearchParams();
  if (token !== null) fragment.set('token', token);
  if (refreshSeconds !== undefined) fragment.set('refresh', String(refreshSeconds));
  base.hash = fragment.toString();
  return base.toString();
}

function writeDiscovery(stateDir: string, discovery: ApiDiscovery): void {
  const path = join(stateDir, API_DISCOVERY_FILE);
  const temp = `${path}.${process.pid}.tmp`;
  // Written aside and renamed, so a CLI reading it never sees half a file.
  writeFileSync(temp, `${JSON.stringify(discovery)}\n`, { mode: 0o600 });
  renameSync(temp, path);
}

function removeDiscovery(stateDir: string): void {
  const path = join(stateDir, API_DISCOVERY_FILE);
  try {
    const current = apiDiscoverySchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    // Another orchestrator may have taken over the file since; only our own entry is ours to remove.
    if (current.success && current.data.pid !== process.pid) return;
  } catch {
    // Unreadable or gone: nothing of ours to keep.
  }
  rmSync(path, { force: true });
}

/** Start serving; resolves once the socket listens. */
export async function startApiServer(options: ApiServerOptions): Promise<RunningApiServer> {
  const host = options.host ?? LOOPBACK;
  const token = ensureApiToken(options.stateDir);
  let web: WebAssets | undefined;
  if (options.web === undefined || options.web === true) {
    try {
      web = loadWebAssets();
    } catch (err) {
      throw new ApiServerError('API_WEB_ASSETS_MISSING', `cannot serve the web dashboard: ${(err as Error).message}`, { cause: err });
    }
  } else if (options.web !== false) {
    web = options.web;
  }
  const app = createApp({
    backend: options.backend,
    auth: { kind: 'bearer', token },
    ...(options.onInternalError !== undefined ? { onInternalError: options.onInternalError } : {}),
    ...(web !== undefined ? { web } : {}),
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const created = serve({ fetch: app.fetch, port: options.port, hostname: host }) as Server;
    const onError = (err: NodeJS.ErrnoException): void => {
      created.close();
      reject(
        err.code === 'EADDRINUSE'
          ? new ApiServerError('API_PORT_IN_USE', `port ${options.port} on ${host} is in use; set api.port in the config (0 picks a free one)`, { cause: err })
          : new ApiServerError('API_LISTEN_FAILED', `cannot serve the API on ${host}:${options.port}: ${err.message}`, { cause: err }),
      );
    };
    created.once('error', onError);
    created.once('listening', () => {
      created.off('error', onError);
      resolve(created);
    });
  });
  // A slow or idle client must not hold the orchestrator's shutdown open.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  const address = server.address() as AddressInfo;
  const url = `http://${host}:${address.port}`;
  const advertise = options.advertise ?? true;
  if (advertise) writeDiscovery(options.stateDir, { url, pid: process.pid, startedAt: new Date().toISOString() });
  let closed = false;
  return {
    url,
    port: address.port,
    host,
    token,
    server,
    dashboardUrl: web === undefined ? null : dashboardLink(url, token),
    close: async () => {
      if (closed) return;
      closed = true;
      if (advertise) removeDiscovery(options.stateDir);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open until they time out.
        server.closeAllConnections();
      });
    },
  };
}
