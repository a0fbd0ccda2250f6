// Deque - the FIFO of ready queue ids: O(1) push, shift and unshift, compacted as it drains,
// so `pop` costs the same whatever the queue length.

export class Deque<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  /** push - add at the tail (newest). */
  push(v: T): void {
    this.items.push(v);
  }

  /** unshift - put back at the head (oldest), e.g. a message whose lease ran out. */
  unshift(v: T): void {
    if (this.head > 0) this.items[--this.head] = v;
    else this.items.unshift(v);
  }

  /** shift - take the head, or undefined when empty. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head]!;
    (this.items as (T | undefined)[])[this.head] = undefined;
    this.head++;
    // Reclaim the drained prefix now and then; amortised O(1).
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!;
  }
}
