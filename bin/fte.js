#!/usr/bin/env node
// The `fte` executable. It runs the TypeScript sources through tsx's loader, so a fresh clone works right after
// `npm ci` with no build step, and the code that runs is always the code in the tree.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../lib/cli/main.ts');
process.exitCode = await main(process.argv);
