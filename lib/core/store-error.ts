/**
 * The store cannot be used at all: a file that is not a database, a path that cannot be opened or written, a schema
 * from a newer fte, a closed store. Callers stop rather than retry. It is not an FteError only because FteErrorCode
 * (lib/core/errors.ts) does not list the code yet; it carries a `code` all the same so callers branch the same way.
 * Every adapter raises it, so it lives beside the port rather than in one adapter.
 */
export class StoreError extends Error {
  readonly code = 'STORE_UNAVAILABLE' as const;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
