import type { Template } from 'aws-cdk-lib/assertions';

/** The parts of an Amazon States Language definition the tests read. */
export interface AslCatcher {
  ErrorEquals: string[];
  Next: string;
  ResultPath?: string;
}

export interface AslRetrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  MaxAttempts?: number;
  BackoffRate?: number;
  MaxDelaySeconds?: number;
  JitterStrategy?: 'FULL' | 'NONE';
}

export interface AslChoiceRule {
  Next?: string;
  Variable?: string;
  And?: AslChoiceRule[];
  Or?: AslChoiceRule[];
  Not?: AslChoiceRule;
  [operator: string]: unknown;
}

export interface AslState {
  Type: 'Task' | 'Choice' | 'Pass' | 'Wait' | 'Succeed' | 'Fail' | 'Parallel' | 'Map';
  Next?: string;
  End?: boolean;
  Resource?: string;
  Parameters?: Record<string, unknown>;
  ResultSelector?: Record<string, unknown>;
  ResultPath?: string | null;
  TimeoutSeconds?: number;
  Retry?: AslRetrier[];
  Catch?: AslCatcher[];
  Choices?: AslChoiceRule[];
  Default?: string;
  SecondsPath?: string;
  Error?: string;
  CausePath?: string;
  Comment?: string;
}

export interface AslDefinition {
  StartAt: string;
  States: Record<string, AslState>;
  TimeoutSeconds?: number;
  Comment?: string;
  QueryLanguage?: string;
}

const PSEUDO: Readonly<Record<string, string>> = {
  'AWS::Partition': 'aws',
  'AWS::Region': 'us-east-1',
  'AWS::AccountId': '123456789012',
  'AWS::URLSuffix': 'amazonaws.com',
};

type Fragment = string | { Ref: string } | { 'Fn::GetAtt': [string, string] };

/**
 * Stand-ins for the CloudFormation references in a definition (a Lambda ARN, the cluster, the subnets), written so they
 * can sit inside a JSON string: the executor binds every Task to a local handler by state name, so only the shape of
 * the values matters.
 */
function fragmentText(fragment: Fragment): string {
  if (typeof fragment === 'string') return fragment;
  if ('Ref' in fragment) return PSEUDO[fragment.Ref] ?? `ref-${fragment.Ref}`;
  const [logicalId, attribute] = fragment['Fn::GetAtt'];
  return attribute === 'Arn'
    ? `arn:aws:lambda:us-east-1:123456789012:function:${logicalId}`
    : `${logicalId}-${attribute}`;
}

/** The definition of the template's one state machine, with its CloudFormation references replaced. */
export function renderDefinition(template: Template): AslDefinition {
  const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
  if (machines.length !== 1) throw new Error(`expected one state machine, found ${machines.length}`);
  const raw: unknown = (machines[0] as { Properties: { DefinitionString: unknown } }).Properties.DefinitionString;
  let text: string;
  if (typeof raw === 'string') {
    text = raw;
  } else if (raw !== null && typeof raw === 'object' && 'Fn::Join' in raw) {
    const [separator, parts] = (raw as { 'Fn::Join': [string, Fragment[]] })['Fn::Join'];
    text = parts.map(fragmentText).join(separator);
  } else {
    throw new Error(`unexpected DefinitionString: ${JSON.stringify(raw).slice(0, 200)}`);
  }
  return JSON.parse(text) as AslDefinition;
}

/** The names a state can go to next: Next, Default, every Choice rule's Next and every Catch's Next. */
export function successors(state: AslState): string[] {
  const next = [
    state.Next,
    state.Default,
    ...(state.Choices ?? []).map((c) => c.Next),
    ...(state.Catch ?? []).map((c) => c.Next),
  ];
  return [...new Set(next.filter((n): n is string => n !== undefined))];
}
