import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { EXECUTE_API_SERVICE } from './sigv4.ts';
import type { SigV4Options } from './sigv4.ts';

/**
 * The SigV4 signer of the API client (see lib/api/sigv4.ts): `@smithy/signature-v4` over SHA-256 from
 * `@smithy/hash-node`, with the standard AWS credential chain unless credentials are given. Loaded on first use.
 */

/** What to sign: the request exactly as it will be sent. */
export interface SignableRequest {
  readonly method: string;
  readonly url: URL;
  /** Header names in lower case; `host` is added from the URL. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

/** The request as the signer sees it: path and query split, the query decoded (the signer encodes it canonically). */
export function toHttpRequest(request: SignableRequest): HttpRequest {
  const query: Record<string, string | string[]> = {};
  for (const [key, value] of request.url.searchParams) {
    const seen = query[key];
    query[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return new HttpRequest({
    method: request.method,
    protocol: request.url.protocol,
    hostname: request.url.hostname,
    ...(request.url.port !== '' ? { port: Number(request.url.port) } : {}),
    // As sent: the URL keeps the path's percent-encoding, and the signer applies SigV4's own encoding on top.
    path: request.url.pathname,
    query,
    headers: { ...request.headers, host: request.url.host },
    ...(request.body !== undefined ? { body: request.body } : {}),
  });
}

export interface SigV4Signer {
  /** The headers to send: the given ones plus `authorization`, `x-amz-date` (and `x-amz-security-token`, `x-amz-content-sha256`). */
  sign(request: SignableRequest): Promise<Record<string, string>>;
}

export function createSigV4Signer(options: SigV4Options): SigV4Signer {
  const signer = new SignatureV4({
    service: options.service ?? EXECUTE_API_SERVICE,
    region: options.region,
    credentials: options.credentials ?? defaultProvider(),
    sha256: Hash.bind(null, 'sha256'),
  });
  return {
    async sign(request) {
      const signed = await signer.sign(toHttpRequest(request), {
        ...(options.clock !== undefined ? { signingDate: options.clock() } : {}),
      });
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(signed.headers)) {
        // fetch sets Host from the URL itself (it may not be set by hand); it was signed with that same value.
        if (name.toLowerCase() !== 'host') headers[name] = value;
      }
      return headers;
    },
  };
}
