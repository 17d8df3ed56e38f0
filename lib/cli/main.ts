import { Command, CommanderError } from 'commander';
import { configCheckCommand } from './commands/config.ts';
import { queueCommand } from './commands/queue.ts';
import { EXIT_USAGE, reportError } from './output.ts';

type Action<O> = (options: O) => number | Promise<number>;

/**
 * Every leaf command takes `--json`; failures are reported once, here, in the form the command was asked to speak,
 * and become the process exit code.
 */
function leaf<O extends { json?: boolean }>(command: Command, action: Action<O>, setExit: (code: number) => void): Command {
  return command.option('--json', 'print machine-readable JSON').action(async (options: O) => {
    try {
      setExit(await action(options));
    } catch (err) {
      setExit(reportError(err, options.json === true));
    }
  });
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('fte')
    .description('fte: a prioritised queue of work that Claude Code agents carry out, with human approval for risky work')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();

  const orchestrator = program
    .command('orchestrator')
    .description('run and inspect the orchestrator of a vault')
    .exitOverride();
  leaf(
    orchestrator
      .command('queue')
      .description('rank the notes waiting in <vault>/Needs_Action by priority (read-only)')
      .option('--vault <dir>', 'the vault folder (default: $FTE_VAULT)')
      .option('--config <file>', 'settings file (default: $FTE_CONFIG, else <vault>/.fte/orchestrator.yaml)')
      .option('--verbose', 'show the score breakdown and why approval is needed'),
    queueCommand,
    setExit,
  );

  const config = program.command('config').description('check and show settings').exitOverride();
  leaf(
    config
      .command('check')
      .description('validate the settings and print them with defaults filled in')
      .option('--config <file>', 'settings file (default: $FTE_CONFIG, else <vault>/.fte/orchestrator.yaml)')
      .option('--vault <dir>', 'the vault whose .fte/orchestrator.yaml to read'),
    configCheckCommand,
    setExit,
  );

  return program;
}

/** Run the CLI on `argv` (as process.argv) and return the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let exitCode = 0;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not failures; anything else commander rejects is a usage error.
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    return reportError(err, argv.includes('--json'));
  }
  return exitCode;
}
