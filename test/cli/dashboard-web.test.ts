import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalBackend } from '../../lib/local/api-backend.ts';
import { startApiServer } from '../../lib/local/http-server.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';
import { TaskService } from '../../lib/local/task-service.ts';
import { validateConfig } from '../../lib/core/config.ts';
import { removeTempDirs, tempDir } from '../api/fixtures.ts';
import { PLAIN, runCli } from './run-cli.ts';

/** `fte orchestrator dashboard --web`: the link to the running orchestrator's web dashboard. */

afterAll(removeTempDirs);

describe('fte orchestrator dashboard --web', () => {
  it('prints the running API’s page with the vault’s token in the fragment, and the page answers', async () => {
    const vault = tempDir('fte-web-cli-');
    mkdirSync(join(vault, '.fte'), { recursive: true });
    const service = new TaskService(tempDir(), new MemoryTaskStore(), validateConfig({}));
    const server = await startApiServer({ backend: createLocalBackend(service), stateDir: join(vault, '.fte'), port: 0 });
    try {
      const json = await runCli(['orchestrator', 'dashboard', '--vault', vault, '--web', '--json']);
      expect(json.code).toBe(0);
      const link = JSON.parse(json.stdout) as { url: string; api: string; refreshSeconds: number };
      expect(link).toEqual({ url: `${server.url}/#token=${server.token}&refresh=5`, api: server.url, refreshSeconds: 5 });
      const page = await fetch(link.url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<title>fte dashboard</title>');

      const human = await runCli(['orchestrator', 'dashboard', '--vault', vault, '--web'], PLAIN);
      expect(human.code).toBe(0);
      expect(human.stdout).toContain(link.url);
      expect(human.stdout).toMatch(/carries the API token/);

      const remote = await runCli(['orchestrator', 'dashboard', '--endpoint', 'http://10.0.0.5:8787', '--token', 'abc', '--web', '--json'], { FTE_VAULT: undefined });
      expect(JSON.parse(remote.stdout)).toMatchObject({ url: 'http://10.0.0.5:8787/#token=abc&refresh=5' });
    } finally {
      await server.close();
    }
  });

  it('fails (exit 1, API_NOT_RUNNING) when no orchestrator serves the vault, and refuses --watch', async () => {
    const vault = tempDir('fte-web-cli-');
    const none = await runCli(['orchestrator', 'dashboard', '--vault', vault, '--web', '--json']);
    expect(none.code).toBe(1);
    expect(JSON.parse(none.stderr)).toMatchObject({ error: { code: 'API_NOT_RUNNING' } });
    const watch = await runCli(['orchestrator', 'dashboard', '--vault', vault, '--web', '--watch', '--json']);
    expect(watch.code).toBe(2);
  });
});
