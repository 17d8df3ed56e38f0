#!/usr/bin/env node
// The README's main command: run the local orchestrator on a fresh copy of examples/vault with the stand-in agent
// (examples/stand-in-claude.mjs speaks Claude Code's headless JSON), so the whole flow runs without an API key.
// The copy lives in demo-vault/ (git-ignored); delete it to start over. Set FTE_CLAUDE_COMMAND=claude for the real agent.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const vault = join(root, 'demo-vault');
if (!existsSync(vault)) cpSync(join(root, 'examples', 'vault'), vault, { recursive: true });
const env = { ...process.env, FTE_CLAUDE_COMMAND: process.env.FTE_CLAUDE_COMMAND ?? join(root, 'examples', 'stand-in-claude.mjs') };
const fte = (args) => spawnSync(process.execPath, [join(root, 'bin', 'fte.js'), ...args, '--vault', vault], { stdio: 'inherit', env });

console.log(`fte demo on ${vault}\n`);
const run = fte(['orchestrator', 'run', '--once']);
if (run.status !== 0) process.exit(run.status ?? 1);
console.log('');
fte(['orchestrator', 'status']);
const waiting = readdirSync(join(vault, 'Pending_Approval')).filter((n) => n.endsWith('.md'));
for (const name of waiting) {
  const id = name.slice(0, -3);
  console.log(`\n${id} waits for your approval: read demo-vault/Pending_Approval/${name}, then\n  npx fte approve ${id} --vault demo-vault && npm run demo`);
}
