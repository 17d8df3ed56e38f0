import type { QueueReport } from '../../app/contracts.ts';
import { formatQueueReport } from '../format.ts';
import { colorEnabled, printJson, EXIT_OK } from '../output.ts';
import { withCliReads, type ReadSourceOptions } from '../read-source.ts';
import { watchLoop } from '../watch.ts';
import { frameError, watchSettings, type WatchFlags } from './observe.ts';

export interface QueueCommandOptions extends ReadSourceOptions, WatchFlags {
  json?: boolean;
  verbose?: boolean;
}

export type { QueueReport };

/**
 * The queue of a vault: from a running orchestrator's API, `--endpoint`, or read-only from the vault — its store when
 * it has one (admitted tasks in dispatch order, plus notes no orchestrator has admitted yet), else by parsing
 * `<vault>/Needs_Action/`. The same computation the API serves.
 */
export async function queueCommand(options: QueueCommandOptions): Promise<number> {
  return withCliReads(options, async (source) => {
    const color = colorEnabled();
    const verbose = options.verbose === true;
    if (!options.watch) {
      const report = await source.reads.queue();
      if (options.json) printJson(report);
      else process.stdout.write(formatQueueReport(report, { verbose, color }));
      return EXIT_OK;
    }
    const settings = watchSettings(options, source.config.dashboard.refresh_interval);
    await watchLoop({
      ...settings,
      json: options.json === true,
      frame: async () => {
        const report = await source.reads.queue();
        const header = `queue · ${source.describe()} · ${report.generatedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z')} · ${report.running} running of ${report.concurrency}\n`;
        return { text: header + formatQueueReport(report, { verbose, color }), json: report };
      },
      onError: (err) => frameError(err, color),
    });
    return EXIT_OK;
  });
}
