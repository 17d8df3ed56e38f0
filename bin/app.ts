import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { FEATURE_FLAGS } from '../lib/cloud/app-context.ts';
import { FteStack } from '../lib/cloud/fte-stack.ts';
import { loadCloudSettings } from '../lib/cloud/settings.ts';
import { ConfigError } from '../lib/core/errors.ts';

/**
 * The CDK app: `npx cdk synth` / `npx cdk deploy`. Settings come from config/orchestrator.yaml (or `-c fteConfig=PATH`)
 * and are validated by the core schema before anything is built, so a bad key fails synth with its name. cdk-nag's
 * AwsSolutions pack runs on every synth: a finding without a written justification is an error, not a warning.
 */
const app = new App({ context: FEATURE_FLAGS });
try {
  const settings = loadCloudSettings((key) => app.node.tryGetContext(key));
  new FteStack(app, 'Fte', {
    settings,
    description: 'fte: an orchestrator for AI agents (task queue, approvals, stop flag, metrics)',
  });
} catch (err) {
  // A settings mistake is the user's to fix: say which key, without a stack trace.
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
app.synth();
