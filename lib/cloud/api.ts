import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface FteApiProps {
  /** The one Lambda serving the whole HTTP API app (the same app as the local runtime's API). */
  readonly handler: lambda.IFunction;
}

/**
 * API Gateway HTTP API in front of the API Lambda. Every route — the catch-all `$default` included — requires IAM
 * (SigV4) auth: the `fte` CLI signs with the caller's AWS credentials, so access is whatever IAM grants
 * `execute-api:Invoke` on this API, and there is no shared secret to leak. HTTP APIs have no API keys anyway.
 */
export class FteApi extends Construct {
  readonly httpApi: apigw.HttpApi;

  constructor(scope: Construct, id: string, props: FteApiProps) {
    super(scope, id);
    this.httpApi = new apigw.HttpApi(this, 'HttpApi', {
      description: 'fte orchestrator API (IAM auth)',
      defaultIntegration: new HttpLambdaIntegration('Api', props.handler),
      defaultAuthorizer: new HttpIamAuthorizer(),
      createDefaultStage: true,
    });

    const accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: logs.RetentionDays.ONE_MONTH });
    const stage = this.httpApi.defaultStage?.node.defaultChild;
    if (!(stage instanceof apigw.CfnStage)) throw new Error('the HTTP API has no default stage to log');
    // Who called what, with the IAM principal: the audit trail of approvals and stops made through the API.
    stage.accessLogSettings = {
      destinationArn: accessLogs.logGroupArn,
      format: JSON.stringify({
        requestId: '$context.requestId',
        ip: '$context.identity.sourceIp',
        caller: '$context.identity.caller',
        user: '$context.identity.user',
        userArn: '$context.identity.userArn',
        requestTime: '$context.requestTime',
        method: '$context.httpMethod',
        path: '$context.path',
        routeKey: '$context.routeKey',
        status: '$context.status',
        responseLength: '$context.responseLength',
        integrationError: '$context.integrationErrorMessage',
      }),
    };
  }

  get url(): string | undefined {
    return this.httpApi.url;
  }
}
