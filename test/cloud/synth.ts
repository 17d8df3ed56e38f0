import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Aspects } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { FEATURE_FLAGS } from '../../lib/cloud/app-context.ts';
import { CONFIG_JSON_ENV } from '../../lib/cloud/runtime-env.ts';
import { validateConfig } from '../../lib/core/config.ts';
import type { Config } from '../../lib/core/config.ts';
import { FteStack } from '../../lib/cloud/fte-stack.ts';
import { CONTEXT_KEYS, loadCloudSettings } from '../../lib/cloud/settings.ts';

/**
 * Settings for executing the machine in tests: a 1 s approval timeout (so the timeout path runs for real), three
 * attempts, backoffs of seconds.
 */
export const TEST_CONFIG_YAML = [
  'approval:',
  '  timeout: 1',
  'retry:',
  '  max_attempts: 3',
  '  initial_backoff: 1',
  '  max_backoff: 4',
].join('\n');

export interface SynthOptions {
  /** YAML of a config file to use instead of config/orchestrator.yaml. */
  readonly configYaml?: string;
  /** More CDK context (`fteApi`, `fteClaudeAuth`, ...). */
  readonly context?: Readonly<Record<string, unknown>>;
  /** Bundle the Lambdas and the runner with esbuild, as `cdk synth` does; off, assets are staged unbundled. */
  readonly bundle?: boolean;
  /** Run cdk-nag's AwsSolutions checks, as bin/app.ts does. */
  readonly nag?: boolean;
}

export interface Synthesized {
  readonly app: App;
  readonly stack: FteStack;
  readonly template: Template;
}

/** Synthesize the stack the way bin/app.ts does: same feature flags, settings through the same loader. */
export function synthFteStack(options: SynthOptions = {}): Synthesized {
  const context: Record<string, unknown> = {
    ...FEATURE_FLAGS,
    // Asset paths in resource metadata, so the tests can find and weigh the bundles.
    'aws:cdk:enable-asset-metadata': true,
    ...(options.bundle === true ? {} : { 'aws:cdk:bundling-stacks': [] }),
    ...options.context,
  };
  if (options.configYaml !== undefined) {
    const file = join(mkdtempSync(join(tmpdir(), 'fte-cdk-config-')), 'orchestrator.yaml');
    writeFileSync(file, options.configYaml);
    context[CONTEXT_KEYS.config] = file;
  }
  const app = new App({ context });
  const settings = loadCloudSettings((key) => app.node.tryGetContext(key), {});
  const stack = new FteStack(app, 'Fte', { settings });
  if (options.nag === true) Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return { app, stack, template: Template.fromStack(stack) };
}

/** The settings a synthesized stack gives its Lambdas (all get the same), validated again as a handler does. */
export function lambdaConfig(template: Template): Config {
  const functions = Object.values(template.findResources('AWS::Lambda::Function')) as {
    Properties: { Environment?: { Variables?: Record<string, string> } };
  }[];
  const json = functions.map((f) => f.Properties.Environment?.Variables?.[CONFIG_JSON_ENV]).find((v) => v !== undefined);
  if (json === undefined) throw new Error(`no Lambda has ${CONFIG_JSON_ENV}`);
  return validateConfig(JSON.parse(json));
}
