import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../lib/api/app.ts';
import { loadWebAssets, WEB_SECURITY_HEADERS, WebAssetsError } from '../../lib/api/web-assets.ts';
import { dashboardLink } from '../../lib/local/http-server.ts';
import { removeTempDirs, tempDir } from './fixtures.ts';
import { AUTH, buildScenario, scenarioApp, TOKEN, type Scenario } from './scenario.ts';

/** The web dashboard's routes in the app: what is public, what is not, and the headers the page is served with. */

let scenario: Scenario;
const web = loadWebAssets();

beforeEach(async () => {
  scenario = await buildScenario();
});

afterAll(removeTempDirs);

function appWithPage() {
  return createApp({ backend: scenario.backend, auth: { kind: 'bearer', token: TOKEN }, clock: scenario.clock, web });
}

describe('the web dashboard routes', () => {
  it('serve the page and its files without a token, with a strict CSP and no CORS', async () => {
    const app = appWithPage();
    for (const [path, type] of [
      ['/', /^text\/html/],
      ['/web/dashboard.js', /^text\/javascript/],
      ['/web/dashboard.css', /^text\/css/],
      ['/web/icon.svg', /^image\/svg\+xml/],
    ] as const) {
      const response = await app.request(path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type')).toMatch(type);
      for (const [name, value] of Object.entries(WEB_SECURITY_HEADERS)) expect(response.headers.get(name), `${path} ${name}`).toBe(value);
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
    }
    expect((await app.request('/', { method: 'HEAD' })).status).toBe(200);
    const csp = WEB_SECURITY_HEADERS['content-security-policy'] ?? '';
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
  });

  it('holds no data: the page is the same file whatever the store holds', async () => {
    const body = await (await appWithPage().request('/')).text();
    expect(body).toBe(web.get('/')?.body);
    for (const id of ['pending-e', 'queued-g', 'Urgent thing']) expect(body).not.toContain(id);
  });

  it('makes nothing else public: other methods, other paths and every API route still need the token', async () => {
    const app = appWithPage();
    for (const [method, path] of [
      ['POST', '/'],
      ['PUT', '/web/dashboard.js'],
      ['GET', '/web/'],
      ['GET', '/web/other.js'],
      ['GET', '/index.html'],
      ['GET', '/dashboard'],
      ['GET', '/status'],
      ['POST', '/tasks/pending-e/approve'],
    ] as const) {
      const response = await app.request(path, { method });
      expect(response.status, `${method} ${path}`).toBe(401);
    }
    expect((await app.request('/dashboard', { headers: AUTH })).status).toBe(200);
  });

  it('is not served where the runtime passes no files (the cloud)', async () => {
    const app = scenarioApp(scenario);
    expect((await app.request('/')).status).toBe(401);
    expect((await app.request('/', { headers: AUTH })).status).toBe(404);
  });

  it('references only files it serves, and loads no script inline or from elsewhere', () => {
    const html = web.get('/')?.body ?? '';
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) expect(web.has(ref), ref).toBe(true);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    // The script writes task data as text only.
    expect(web.get('/web/dashboard.js')?.body).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });

  it('fails to load with a typed error when its files are missing', () => {
    expect(() => loadWebAssets(tempDir())).toThrow(WebAssetsError);
  });
});

describe('dashboardLink', () => {
  it('puts the token and refresh interval in the fragment, which browsers never send', () => {
    const url = new URL(dashboardLink('http://127.0.0.1:8787', 'f'.repeat(64), 5));
    expect(url.origin + url.pathname).toBe('http://127.0.0.1:8787/');
    expect(url.search).toBe('');
    expect(new URLSearchParams(url.hash.slice(1)).get('token')).toBe('f'.repeat(64));
    expect(new URLSearchParams(url.hash.slice(1)).get('refresh')).toBe('5');
    expect(dashboardLink('http://example.com:9/api?x=1', null)).toBe('http://example.com:9/api/');
  });
});
