import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * How the API authenticates callers. Locally a bearer token kept in `<vault>/.fte/api-token`; in the cloud API Gateway
 * has already checked the caller's IAM signature before the Lambda runs, so the app itself checks nothing there. The
 * choice is explicit (`none` must be written out), so no runtime serves the API open by forgetting an option.
 */
export type ApiAuth = { readonly kind: 'bearer'; readonly token: string } | { readonly kind: 'none' };

const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Whether an Authorization header carries the expected bearer token. Both sides are hashed first so the comparison is
 * constant-time whatever the lengths: timingSafeEqual needs equal-length inputs, and a length check would leak.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (header === undefined || token.length === 0) return false;
  const match = BEARER.exec(header);
  if (match === null) return false;
  return timingSafeEqual(digest(match[1] as string), digest(token));
}
