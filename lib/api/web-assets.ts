import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The web dashboard's files (lib/api/web/): a static page with no data in it, served at `GET /` without
 * authentication. Everything it shows it fetches from the API with the bearer token the operator hands it in the
 * link's #fragment (docs/API.md, "Web dashboard"). The files are read once, when a server starts, and kept in memory.
 *
 * Kept apart from app.ts so the app (which also runs in a Lambda, without these files) only takes the assets as an
 * option: a runtime that does not pass them serves no page.
 */

export interface WebAsset {
  /** The URL path it is served at. */
  readonly path: string;
  readonly contentType: string;
  readonly body: string;
}

export type WebAssets = ReadonlyMap<string, WebAsset>;

export class WebAssetsError extends Error {
  readonly code = 'WEB_ASSETS_MISSING' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WebAssetsError';
  }
}

/** Where the files are: beside this module. Computed on demand, so importing the headers touches no file system path. */
export function webDir(): string {
  return fileURLToPath(new URL('./web/', import.meta.url));
}

const FILES: ReadonlyArray<{ file: string; path: string; contentType: string }> = [
  { file: 'index.html', path: '/', contentType: 'text/html; charset=utf-8' },
  { file: 'dashboard.js', path: '/web/dashboard.js', contentType: 'text/javascript; charset=utf-8' },
  { file: 'dashboard.css', path: '/web/dashboard.css', contentType: 'text/css; charset=utf-8' },
  { file: 'icon.svg', path: '/web/icon.svg', contentType: 'image/svg+xml' },
];

export function loadWebAssets(dir: string = webDir()): WebAssets {
  const assets = new Map<string, WebAsset>();
  for (const { file, path, contentType } of FILES) {
    let body: string;
    try {
      body = readFileSync(join(dir, file), 'utf8');
    } catch (err) {
      throw new WebAssetsError(`the web dashboard file ${join(dir, file)} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    assets.set(path, { path, contentType, body });
  }
  return assets;
}

/**
 * Headers of every dashboard file. The CSP allows scripts, styles and fetches from this origin only and no inline
 * script or event handler at all: even if a task title ever reached the page as markup, it could not run. The page may
 * not be framed (no clickjacking of its Approve button) and sends no Referer anywhere.
 */
export const WEB_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // The files are small and change with fte itself: revalidating every load keeps an upgraded page consistent.
  'cache-control': 'no-cache',
};
