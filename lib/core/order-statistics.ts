import { borrow, giveBack } from './scratch-arrays.ts';

/**
 * Exact order statistics without sorting everything: the values a sort would put at given ranks, found by radix
 * selection on the bits of the numbers. A double's 64 bits, with the sign bit flipped for positives and every bit
 * flipped for negatives, compare as unsigned integers exactly as a typed-array sort orders the numbers (-0 before +0,
 * ±Infinity at the ends). Counting 16-bit digits of that key, most significant first, narrows each rank to the few
 * values sharing its leading digits; those are sorted. Each step is a branch-free pass, so a few hundred thousand
 * durations cost a millisecond or two, and no input can make it quadratic.
 */

/** The 1-based nearest rank of the p-th percentile among n values: ⌈p·n/100⌉, clamped to [1, n]. */
export function nearestRank(n: number, p: number): number {
  // p·n/100 rather than p/100·n: with integer p the product is exact, so 95 of 100 is rank 95, never 95.000…01 → 96.
  return Math.min(n, Math.max(1, Math.ceil((p * n) / 100)));
}

const DIGIT_VALUES = 1 << 16;
/** The digits are read from the two 32-bit halves of each double, which typed arrays give in platform byte order. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Below this many candidates a sort is cheaper than another counting pass over 65,536 buckets. */
const SORT_BELOW = 4096;

/**
 * The values `values.slice().sort()` would hold at the 0-based positions `positions`. `values` must hold no NaN (NaN
 * has no place in that order) and is not modified.
 */
export function valuesAtSortedPositions(values: Float64Array, positions: readonly number[]): number[] {
  const n = values.length;
  for (const k of positions) {
    if (!(Number.isInteger(k) && k >= 0 && k < n)) throw new RangeError(`position ${k} outside [0, ${n})`);
  }
  if (n < SORT_BELOW || !LITTLE_ENDIAN) {
    const sorted = values.slice().sort();
    return positions.map((k) => sorted[k] as number);
  }
  const counts = borrow(Uint32Array, DIGIT_VALUES);
  try {
    countDigits(values, 0, counts);
    return positions.map((k) => {
      const { digit, before } = locate(counts, k);
      const candidates = withDigit(values, 0, digit, counts[digit] as number);
      try {
        return narrow(candidates, k - before, 1);
      } finally {
        giveBack(candidates);
      }
    });
  } finally {
    giveBack(counts);
  }
}

/** The value at sorted position k of `values`, all of which agree on the key digits before `level`. */
function narrow(values: Float64Array, k: number, level: number): number {
  if (values.length < SORT_BELOW || level === 4) return values.slice().sort()[k] as number;
  const counts = borrow(Uint32Array, DIGIT_VALUES);
  try {
    countDigits(values, level, counts);
    const { digit, before } = locate(counts, k);
    const candidates = withDigit(values, level, digit, counts[digit] as number);
    try {
      return narrow(candidates, k - before, level + 1);
    } finally {
      giveBack(candidates);
    }
  } finally {
    giveBack(counts);
  }
}

/** The digit whose values hold sorted position k, and how many values have smaller digits. */
function locate(counts: Uint32Array, k: number): { digit: number; before: number } {
  let before = 0;
  for (let digit = 0; digit < DIGIT_VALUES; digit++) {
    const c = counts[digit] as number;
    if (k < before + c) return { digit, before };
    before += c;
  }
  throw new RangeError(`position ${k} beyond the ${before} values counted`);
}

function countDigits(values: Float64Array, level: number, counts: Uint32Array): void {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length * 2);
  const low = level >= 2;
  const shift = level % 2 === 0 ? 16 : 0;
  for (let i = 0; i < values.length; i++) {
    const d = digitOf(words[2 * i] as number, words[2 * i + 1] as number, low, shift);
    counts[d] = (counts[d] as number) + 1;
  }
}

function withDigit(values: Float64Array, level: number, digit: number, count: number): Float64Array {
  const out = borrow(Float64Array, count, false);
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length * 2);
  const low = level >= 2;
  const shift = level % 2 === 0 ? 16 : 0;
  let j = 0;
  for (let i = 0; i < values.length; i++) {
    if (digitOf(words[2 * i] as number, words[2 * i + 1] as number, low, shift) === digit) out[j++] = values[i] as number;
  }
  return out;
}

/**
 * One 16-bit digit of the order-preserving key of the double whose little-endian words are `lo`, `hi`: `hi >> 31` is
 * all ones for a negative number (every bit flipped) and zero otherwise (only the sign bit flipped).
 */
function digitOf(lo: number, hi: number, low: boolean, shift: number): number {
  const negative = hi >> 31;
  const word = low ? lo ^ negative : hi ^ (negative | 0x8000_0000);
  return (word >>> shift) & 0xffff;
}
