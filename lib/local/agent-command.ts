import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export class AgentCommandError extends Error {
  readonly code = 'AGENT_NOT_FOUND' as const;
}

/**
 * Fail at start, naming the setting, when the agent command cannot run: otherwise every task would fail its attempts
 * one backoff at a time and land in Failed/ hours later for a typo in the config.
 */
export function assertAgentCommand(command: string, env: NodeJS.ProcessEnv = process.env): string {
  const candidates = command.includes('/') ? [command] : (env['PATH'] ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return isAbsolute(candidate) ? candidate : join(process.cwd(), candidate);
    } catch {
      // Not this one.
    }
  }
  throw new AgentCommandError(
    `the agent command ${JSON.stringify(command)} was not found or is not executable; set orchestrator.claude_command ` +
      'in the config or the FTE_CLAUDE_COMMAND environment variable (install Claude Code with `npm install -g @anthropic-ai/claude-code`)',
  );
}
