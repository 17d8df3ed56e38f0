/**
 * AWS Signature Version 4 for requests to the cloud API. API Gateway (HTTP API, every route AWS_IAM) refuses any
 * request whose signature it cannot verify against the caller's IAM credentials, so the `fte` CLI signs every request
 * with the standard AWS credential chain (environment, shared config and SSO, container and instance roles) — no
 * shared secret exists to leak.
 *
 * This module holds what the CLI needs to decide whether and where to sign, and is free of the AWS SDK; the signer
 * (lib/api/sigv4-signer.ts) is loaded by lib/api/client.ts only when a client signs, so commands against a local API
 * do not load the SDK's credential chain.
 */

/** The signing name of API Gateway's invoke endpoint. */
export const EXECUTE_API_SERVICE = 'execute-api';

/** Fixed credentials (the tests'), or a provider the signer resolves (and refreshes) before each signature. */
export type SigV4Credentials =
  | { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string }
  | (() => Promise<{ readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string }>);

export interface SigV4Options {
  readonly region: string;
  /** Default: the standard AWS credential chain (`@aws-sdk/credential-provider-node`). */
  readonly credentials?: SigV4Credentials;
  /** Default `execute-api`. */
  readonly service?: string;
  /** The signing time; the tests fix it so a signature can be compared byte for byte. */
  readonly clock?: () => Date;
}

/** The AWS region could not be determined for SigV4 (neither the endpoint's host name nor AWS_REGION names one). */
export class SigV4RegionError extends Error {
  readonly code = 'AWS_REGION_UNKNOWN' as const;

  constructor(host: string) {
    super(`cannot tell the AWS region of ${host} for SigV4: set AWS_REGION (or use the execute-api URL of the stack output ApiUrl)`);
    this.name = new.target.name;
  }
}

// `<api id>.execute-api.<region>.amazonaws.com`, and the China partition's `.amazonaws.com.cn`.
const EXECUTE_API_HOST = /^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/i;

/** Whether `url` is an API Gateway invoke URL, which only a signed request may call. */
export function isExecuteApiUrl(url: URL | string): boolean {
  return EXECUTE_API_HOST.test(new URL(url).hostname);
}

/** The region in an execute-api host name, else AWS_REGION / AWS_DEFAULT_REGION; throws SigV4RegionError without one. */
export function regionForEndpoint(url: URL | string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  const { hostname } = new URL(url);
  const fromHost = EXECUTE_API_HOST.exec(hostname)?.[1];
  if (fromHost !== undefined) return fromHost.toLowerCase();
  const fromEnv = env['AWS_REGION'] ?? env['AWS_DEFAULT_REGION'];
  if (fromEnv !== undefined && fromEnv.trim() !== '') return fromEnv.trim();
  throw new SigV4RegionError(hostname);
}

