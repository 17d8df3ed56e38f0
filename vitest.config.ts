import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 20_000,
    // Two cores in CI: forks keep native addons and child processes isolated per file.
    pool: 'forks',
  },
});
