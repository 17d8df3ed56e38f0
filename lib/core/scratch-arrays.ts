/**
 * Typed arrays lent to one synchronous computation and taken back when it ends. A metrics pass over a month of history
 * needs tens of megabytes of working arrays; allocating them afresh on every call counts as external memory to V8,
 * which answers with a full garbage collection every call or two — and in a process that holds many objects, that
 * collection costs more than the pass. Reusing them makes a repeated pass allocate nothing large.
 *
 * Only synchronous code may borrow (nothing else runs until it gives back), and a borrowed array must not escape.
 */

type Typed = Float64Array | Uint32Array | Int32Array | Uint8Array;
type Constructor<T extends Typed> = new (length: number) => T;

/** Arrays longer than this are left to the collector: a one-off huge window should not pin its memory forever. */
const MAX_RETAINED_LENGTH = 1 << 22;
const MAX_RETAINED_PER_KIND = 8;

const free = new Map<Constructor<Typed>, Typed[]>();

/**
 * `length` elements, set to 0 unless `zeroed` is false (for a caller that writes every element before reading it): a
 * view of exactly that length over a retained array when one is big enough, so `length` on the result may be trusted
 * as its capacity.
 */
export function borrow<T extends Typed>(kind: Constructor<T>, length: number, zeroed = true): T {
  const list = free.get(kind) as T[] | undefined;
  if (list !== undefined) {
    // Best fit, so a small request does not take the big array a later request in the same pass needs.
    let best = -1;
    for (let i = 0; i < list.length; i++) {
      const candidate = list[i] as T;
      if (candidate.length >= length && (best < 0 || candidate.length < (list[best] as T).length)) best = i;
    }
    if (best >= 0) {
      const array = list[best] as T;
      list.splice(best, 1);
      const view = array.subarray(0, length) as T;
      if (zeroed) view.fill(0);
      return view;
    }
  }
  return new kind(length);
}

/** Takes back a borrowed array (the whole of the memory behind it, whatever view of it was borrowed or grown). */
export function giveBack(borrowed: Typed): void {
  if (borrowed.byteOffset !== 0) return;
  const kind = borrowed.constructor as Constructor<Typed> & (new (buffer: ArrayBufferLike) => Typed);
  const array = borrowed.byteLength === borrowed.buffer.byteLength ? borrowed : new kind(borrowed.buffer);
  if (array.length < 16 || array.length > MAX_RETAINED_LENGTH) return;
  let list = free.get(kind);
  // The same memory given back twice would be lent to two borrowers at once.
  if (list?.some((a) => a.buffer === array.buffer)) return;
  if (list === undefined) {
    list = [];
    free.set(kind, list);
  }
  if (list.length < MAX_RETAINED_PER_KIND) list.push(array);
}

/**
 * `array` grown to at least `length` elements, its contents kept and the rest zeroed unless `zeroed` is false; the old
 * array is given back.
 */
export function regrow<T extends Typed>(kind: Constructor<T>, array: T, length: number, zeroed = true): T {
  const next = borrow(kind, Math.max(length, array.length * 2), zeroed);
  next.set(array);
  giveBack(array);
  return next;
}
