import { createHash, createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { queueSchema } from '../../lib/app/contracts.ts';
import { createApp } from '../../lib/api/app.ts';
import { ApiClient, ApiRequestError, ApiSigningError } from '../../lib/api/client.ts';
import { EXECUTE_API_SERVICE, isExecuteApiUrl, regionForEndpoint } from '../../lib/api/sigv4.ts';
import type { SigV4Credentials } from '../../lib/api/sigv4.ts';
import { createSigV4Signer } from '../../lib/api/sigv4-signer.ts';
import { endpointAuth } from '../../lib/cli/read-source.ts';
import { UsageError } from '../../lib/cli/output.ts';
import { runCli } from '../cli/run-cli.ts';
import { removeTempDirs } from './fixtures.ts';
import { NOW, ago, buildScenario, type Scenario } from './scenario.ts';

/**
 * The client's SigV4 mode against a local server that checks signatures as API Gateway does — recomputed from the
 * request it received, with the caller's secret — with fixed credentials and a fixed clock, so nothing reaches AWS.
 * The server's check is an independent implementation of the SigV4 algorithm (below), so a signer configured with the
 * wrong service, region or hash is caught, not merely agreed with; one test also re-signs with the client's own signer.
 */

const REGION = 'eu-west-1';
const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const SIGNED_AT = new Date('2026-03-10T12:00:00.000Z');

// ---- What API Gateway does with a signed request (AWS SigV4, "Create a signed AWS API request")

const AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

const sha256Hex = (data: string): string => createHash('sha256').update(data, 'utf8').digest('hex');
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();
// RFC 3986 unreserved characters stay, everything else is %XX (upper case), as SigV4 requires.
const uriEncode = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

interface Verdict {
  readonly ok: boolean;
  readonly why: string;
  readonly accessKeyId?: string;
}

/** Check `req` the way the service does: rebuild the canonical request from what arrived and sign it with the secret. */
function verifySigV4(req: IncomingMessage, body: string, secrets: Readonly<Record<string, string>>): Verdict {
  const match = AUTHORIZATION.exec(String(req.headers.authorization ?? ''));
  if (match === null) return { ok: false, why: 'no SigV4 Authorization header' };
  const [, accessKeyId = '', date = '', region = '', service = '', signedHeaderList = '', signature = ''] = match;
  const secret = secrets[accessKeyId];
  if (secret === undefined) return { ok: false, why: `unknown access key ${accessKeyId}` };
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  if (!amzDate.startsWith(date)) return { ok: false, why: 'x-amz-date does not match the credential scope date' };

  const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
  // Every service but S3 encodes each path segment once more over the path as sent.
  const canonicalPath = url.pathname.split('/').map(uriEncode).join('/');
  const canonicalQuery = [...url.searchParams]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const signedHeaders = signedHeaderList.split(';');
  if (!signedHeaders.includes('host')) return { ok: false, why: 'host is not signed' };
  const canonicalHeaders = signedHeaders
    .map((name) => `${name}:${String(req.headers[name] ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const payloadHash = sha256Hex(body);
  const claimed = req.headers['x-amz-content-sha256'];
  if (claimed !== undefined && claimed !== payloadHash) return { ok: false, why: 'the body does not match x-amz-content-sha256' };
  const canonicalRequest = [req.method, canonicalPath, canonicalQuery, canonicalHeaders, signedHeaderList, payloadHash].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
  const expected = createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
  if (expected !== signature) return { ok: false, why: 'The request signature we calculated does not match the signature you provided.' };
  if (service !== EXECUTE_API_SERVICE || region !== REGION) return { ok: false, why: `signed for ${service} in ${region}` };
  return { ok: true, why: 'ok', accessKeyId };
}

// ---- A local stand-in for API Gateway + the API Lambda

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly verdict: Verdict;
}

let scenario: Scenario;
let app: Hono;
let server: Server;
let baseUrl: string;
const received: Received[] = [];

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

beforeAll(async () => {
  scenario = await buildScenario();
  app = createApp({ backend: scenario.backend, auth: { kind: 'none' }, clock: scenario.clock });
  server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const verdict = verifySigV4(req, body, { [CREDENTIALS.accessKeyId]: CREDENTIALS.secretAccessKey });
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, verdict });
      if (!verdict.ok) {
        // API Gateway's own answer, not the app's: the Lambda never runs.
        res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ message: verdict.why }));
        return;
      }
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers.set(name, value);
      const response = await app.fetch(
        new Request(new URL(req.url ?? '/', baseUrl), { method: req.method ?? 'GET', headers, ...(body !== '' ? { body } : {}) }),
      );
      res.writeHead(response.status, Object.fromEntries(response.headers.entries())).end(await response.text());
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await scenario.service.close();
  removeTempDirs();
});

afterEach(() => {
  received.length = 0;
});

function signingClient(credentials: SigV4Credentials = CREDENTIALS): ApiClient {
  return new ApiClient({ baseUrl, auth: { kind: 'sigv4', region: REGION, credentials, clock: () => SIGNED_AT } });
}

describe('ApiClient with auth sigv4', () => {
  it('signs every request so that the service accepts it: reads with queries, encoded paths, POST bodies', async () => {
    const client = signingClient();
    expect((await client.status()).counts.pending_approval).toBe(1);
    await client.metrics({ since: ago(24 * 3_600_000), until: NOW });
    await client.task('pending-e');
    await expect(client.task('no such:task')).rejects.toMatchObject({ code: 'TASK_NOT_FOUND', status: 404 });
    expect((await client.addTask({ title: 'Signed task', body: 'With a body: ümlauts & ☃.' })).id).toBe('signed-task');
    expect((await client.reject('signed-task', { actor: 'ignored' }, 'wrong queue')).state).toBe('rejected');
    expect(received.map((r) => [r.method, r.url, r.verdict.why])).toEqual([
      ['GET', '/status', 'ok'],
      ['GET', `/metrics?since=${encodeURIComponent(ago(24 * 3_600_000).toISOString())}&until=${encodeURIComponent(NOW.toISOString())}`, 'ok'],
      ['GET', '/tasks/pending-e', 'ok'],
      ['GET', '/tasks/no%20such%3Atask', 'ok'],
      ['POST', '/tasks', 'ok'],
      ['POST', '/tasks/signed-task/reject', 'ok'],
    ]);
  });

  it('writes the Authorization header of SigV4 for execute-api in the region, at the fixed time', async () => {
    await signingClient().status();
    const [request] = received;
    expect(request?.headers['x-amz-date']).toBe('20260310T120000Z');
    expect(request?.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20260310\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=accept;host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$/,
    );
    // The same signer, with the same credentials and clock, over the request as the server received it: same header.
    const again = await createSigV4Signer({ region: REGION, credentials: CREDENTIALS, clock: () => SIGNED_AT }).sign({
      method: 'GET',
      url: new URL(request?.url ?? '/', baseUrl),
      headers: { accept: String(request?.headers.accept) },
    });
    expect(again['authorization']).toBe(request?.headers.authorization);
    // A second request at the same time and with the same content carries the same signature: nothing random in it.
    await signingClient().status();
    expect(received[1]?.headers.authorization).toBe(request?.headers.authorization);
  });

  it('is refused when the secret is wrong, the key unknown, or the request is not signed', async () => {
    await expect(signingClient({ ...CREDENTIALS, secretAccessKey: 'not-the-secret' }).status()).rejects.toMatchObject({
      status: 403,
      code: 'HTTP_ERROR',
    });
    await expect(signingClient({ accessKeyId: 'AKIDOTHER', secretAccessKey: 'x' }).status()).rejects.toBeInstanceOf(ApiRequestError);
    await expect(new ApiClient({ baseUrl, token: 'a-bearer-token' }).status()).rejects.toMatchObject({ status: 403 });
    expect(received.map((r) => r.verdict.ok)).toEqual([false, false, false]);
    expect(received[0]?.verdict.why).toMatch(/signature we calculated does not match/);
  });

  it('signs the session token of temporary credentials, resolved from a provider', async () => {
    let resolved = 0;
    const provider = async () => {
      resolved += 1;
      return { ...CREDENTIALS, sessionToken: 'FwoGZXIvYXdzEXAMPLE' };
    };
    await signingClient(provider).health();
    expect(resolved).toBe(1);
    expect(received[0]?.verdict.ok).toBe(true);
    expect(received[0]?.headers['x-amz-security-token']).toBe('FwoGZXIvYXdzEXAMPLE');
    expect(String(received[0]?.headers.authorization)).toMatch(/SignedHeaders=[^,]*x-amz-security-token/);
  });

  it('reports missing credentials as AWS_SIGNING_FAILED, without sending anything', async () => {
    const failing = signingClient(async () => {
      throw new Error('Could not load credentials from any providers');
    });
    const error = await failing.status().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ApiSigningError);
    expect(error).toMatchObject({ code: 'AWS_SIGNING_FAILED', message: expect.stringMatching(/Could not load credentials/) });
    expect(received).toEqual([]);
  });
});

describe('choosing how to authenticate to --endpoint', () => {
  const cloud = 'https://a1b2c3d4e5.execute-api.eu-central-1.amazonaws.com';

  it('recognises API Gateway invoke URLs and their region', () => {
    expect(isExecuteApiUrl(cloud)).toBe(true);
    expect(isExecuteApiUrl('https://a1b2c3d4e5.execute-api.cn-north-1.amazonaws.com.cn/')).toBe(true);
    expect(isExecuteApiUrl('http://127.0.0.1:8787')).toBe(false);
    expect(isExecuteApiUrl('https://execute-api.example.com')).toBe(false);
    expect(regionForEndpoint(cloud, {})).toBe('eu-central-1');
    expect(regionForEndpoint('https://fte.example.com', { AWS_REGION: 'us-west-2' })).toBe('us-west-2');
    expect(regionForEndpoint('https://fte.example.com', { AWS_DEFAULT_REGION: 'ap-south-1' })).toBe('ap-south-1');
  });

  it('signs for execute-api hosts by default, uses the token elsewhere, and follows --auth', () => {
    expect(endpointAuth(cloud, {}, {})).toEqual({ kind: 'sigv4', region: 'eu-central-1' });
    expect(endpointAuth('http://127.0.0.1:8787/', { token: 't' }, {})).toEqual({ kind: 'token', token: 't' });
    expect(endpointAuth('http://127.0.0.1:8787/', {}, { FTE_API_TOKEN: 'from-env' })).toEqual({ kind: 'token', token: 'from-env' });
    expect(endpointAuth('http://127.0.0.1:8787/', {}, {})).toBeUndefined();
    expect(endpointAuth('https://fte.example.com/', { auth: 'sigv4' }, { AWS_REGION: 'us-west-2' })).toEqual({ kind: 'sigv4', region: 'us-west-2' });
    expect(endpointAuth(cloud, { auth: 'token', token: 't' }, {})).toEqual({ kind: 'token', token: 't' });
    expect(() => endpointAuth('https://fte.example.com/', { auth: 'sigv4' }, {})).toThrow(UsageError);
    expect(() => endpointAuth('https://fte.example.com/', { auth: 'sigv4' }, {})).toThrow(/set AWS_REGION/);
    expect(() => endpointAuth(cloud, { auth: 'iam' }, {})).toThrow(/--auth must be token or sigv4/);
  });

  it('lets the CLI read a SigV4-protected API with the credentials of the AWS chain (here: the environment)', async () => {
    const env = {
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_SESSION_TOKEN: undefined,
      AWS_PROFILE: undefined,
      FTE_API_TOKEN: undefined,
    };
    const signed = await runCli(['orchestrator', 'queue', '--endpoint', baseUrl, '--auth', 'sigv4', '--json'], env);
    expect(signed.stderr).toBe('');
    expect(signed.code).toBe(0);
    expect(queueSchema.parse(JSON.parse(signed.stdout)).tasks.map((t) => t.id)).toContain('queued-g');
    expect(received.at(-1)?.verdict).toMatchObject({ ok: true, accessKeyId: CREDENTIALS.accessKeyId });

    const unsigned = await runCli(['orchestrator', 'queue', '--endpoint', baseUrl, '--json'], env);
    expect(unsigned.code).toBe(1);
    const badMode = await runCli(['orchestrator', 'queue', '--endpoint', baseUrl, '--auth', 'iam', '--json'], env);
    expect(badMode.code).toBe(2);
  });
});
