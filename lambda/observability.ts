import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

/**
 * Logs and metrics of the Lambdas. Metrics are CloudWatch embedded metric format lines (Powertools Metrics), in one
 * namespace with NO dimensions: there is one orchestrator per stack, and the alarms in lib/cloud/monitoring.ts read
 * these names without dimensions (test/aws/handlers.test.ts checks the two lists agree). Never a task id as a
 * dimension: every distinct value would be a new billed metric.
 */
export const METRICS = {
  namespace: 'fte',
  /** Scheduler, every tick. */
  queueDepth: 'QueueDepth',
  oldestQueuedAge: 'OldestQueuedAgeSeconds',
  oldestApprovalAge: 'OldestApprovalAgeSeconds',
  running: 'RunningTasks',
  /** Scheduler: executions it started. */
  started: 'TasksStarted',
  /** Scheduler, every tick with a daily budget configured: spend in the rolling 24 h, and 1 while dispatch is blocked by it. */
  budgetSpent: 'BudgetSpentUsd24h',
  budgetExhausted: 'BudgetExhausted',
  /** Step handler: transitions into done / failed, failures that will be retried, and the runs they end. */
  succeeded: 'TasksSucceeded',
  failed: 'TasksFailed',
  retried: 'TasksRetried',
  runDuration: 'RunDurationMs',
  runCost: 'RunCostUsd',
  /** Ingest. */
  ingested: 'TasksIngested',
  quarantined: 'TasksQuarantined',
} as const;

export type MetricName = Exclude<(typeof METRICS)[keyof typeof METRICS], typeof METRICS.namespace>;

export { MetricUnit };

export function createLogger(serviceName: string): Logger {
  return new Logger({ serviceName });
}

export function createMetrics(serviceName: string): Metrics {
  const metrics = new Metrics({ namespace: METRICS.namespace, serviceName });
  // Powertools adds a `service` dimension by default; the alarms read the metrics without dimensions.
  metrics.clearDefaultDimensions();
  return metrics;
}

/** Publish what was recorded, if anything: an empty flush only logs a Powertools warning. */
export function flushMetrics(metrics: Metrics): void {
  if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
}
