/**
 * Set and class ids: u32, never 0, smallest free first.
 *
 * An id freed by update n still has entries in the maps until the end of update n's
 * delta (deletions come last), and sets being torn down may still point at it; handing
 * it to new content in the same delta would let a packet meet the new content through
 * an old set. The compiler therefore releases an update's ids only after all of that
 * update's allocations: a freed id is first handed out by a later update.
 */

const MAX_ID = 2 ** 32 - 1;

export class IdAllocator {
  private next = 1;
  /** Free ids, smallest first. */
  private free: number[] = [];

  constructor(private readonly what: string) {}

  allocate(): number {
    const recycled = this.free.shift();
    if (recycled !== undefined) return recycled;
    if (this.next > MAX_ID) throw new RangeError(`${this.what} ids exhausted (2^32 - 1 in use)`);
    return this.next++;
  }

  release(ids: readonly number[]): void {
    if (ids.length > 0) this.free = [...this.free, ...ids].sort((a, b) => a - b);
  }

  /** A copy, so an update can be tried and thrown away. */
  clone(): IdAllocator {
    const copy = new IdAllocator(this.what);
    copy.next = this.next;
    copy.free = [...this.free];
    return copy;
  }
}
