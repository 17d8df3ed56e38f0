import { borrow, giveBack, regrow } from './scratch-arrays.ts';

/**
 * Numbers strings 0, 1, 2, … in the order first seen. It does what a Map<string, number> would, for the one hot loop
 * where hundreds of thousands of distinct task ids are looked up: a Map of that size spends most of its time growing
 * and missing the cache, while this table is a flat Int32Array probed linearly, grown in bulk with the hashes kept.
 */
export class StringIndex {
  /** Key index + 1 per slot, 0 for an empty one (so a borrowed, zeroed array is an empty table). */
  private slots: Int32Array;
  private mask: number;
  private hashes: Int32Array;
  private readonly keys: string[] = [];

  constructor(expected = 0) {
    let capacity = 1024;
    while (capacity < expected * 2) capacity *= 2;
    this.slots = borrow(Int32Array, capacity);
    this.mask = capacity - 1;
    this.hashes = borrow(Int32Array, capacity / 2);
  }

  get size(): number {
    return this.keys.length;
  }

  /** The number of `key`, assigning the next one if it is new. */
  indexOf(key: string): number {
    const h = hash(key);
    let p = h & this.mask;
    for (;;) {
      const k = (this.slots[p] as number) - 1;
      if (k < 0) break;
      if (this.hashes[k] === h && this.keys[k] === key) return k;
      p = (p + 1) & this.mask;
    }
    const k = this.keys.length;
    this.keys.push(key);
    if (k === this.hashes.length) this.hashes = regrow(Int32Array, this.hashes, k + 1);
    this.hashes[k] = h;
    // Kept at most half full; growing re-places every key, the new one included.
    if (this.keys.length * 2 > this.slots.length) this.rehash();
    else this.slots[p] = k + 1;
    return k;
  }

  /** Gives the working arrays back (scratch-arrays.ts); the index must not be used afterwards. */
  release(): void {
    giveBack(this.hashes);
    giveBack(this.slots);
  }

  private rehash(): void {
    let capacity = this.slots.length;
    while (this.keys.length * 2 > capacity) capacity *= 2;
    giveBack(this.slots);
    const slots = borrow(Int32Array, capacity);
    const mask = capacity - 1;
    for (let k = 0; k < this.keys.length; k++) {
      let p = (this.hashes[k] as number) & mask;
      while (slots[p] !== 0) p = (p + 1) & mask;
      slots[p] = k + 1;
    }
    this.slots = slots;
    this.mask = mask;
  }
}

/** FNV-1a over the UTF-16 code units, then a final mix so that linear probing sees well-spread low bits. */
function hash(s: string): number {
  let h = 0x811c9dc5 ^ s.length;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h;
}
