import { describe, expect, it } from 'vitest';
import { runLoad } from './load.ts';

/**
 * The seed's load test (issue 7): 100 tasks, 10 concurrent, the stand-in agent, the orchestrator as its own process
 * with its HTTP API on. Figures (dispatch latency, /dashboard latency, memory from the first task to the last) are
 * printed; only behaviour is asserted, since timings on a shared CI machine are not a contract. The 10,000-task scale
 * run is `npx tsx bench/load.ts`.
 */
describe('load: 100 tasks, 10 concurrent', () => {
  it('every task ends done exactly once, the cap holds and is used, the API answers throughout', async () => {
    const r = await runLoad({ tasks: 100, concurrency: 10, agent: { kind: 'stand-in', delayMs: 300 }, pollMs: 100 });
    console.log(r.table);
    expect(r.done).toBe(100);
    expect(r.notExactlyOneTerminal).toEqual([]);
    expect(r.ranTwice).toEqual([]);
    expect(r.peakConcurrency).toBeLessThanOrEqual(10);
    expect(r.peakConcurrency).toBeGreaterThanOrEqual(5); // it did run tasks side by side
    expect(r.admissionToDispatch).toHaveLength(100);
    expect(r.admissionToDispatch.every((ms) => ms >= 0)).toBe(true);
    expect(r.api.samples).toBeGreaterThan(0);
    expect(r.api.failures).toBe(0);
    expect(r.memory.samples.length).toBeGreaterThan(0);
  }, 120_000);
});
