/** The single-item write's condition failed (for a transaction, see its cancellation reasons instead). */
export function isConditionalCheckFailed(err: unknown): boolean {
  return err instanceof Error && err.name === 'ConditionalCheckFailedException';
}
