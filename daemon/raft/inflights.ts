// A ring buffer of the last index of each App message in flight to one follower, so the leader
// can bound the pipeline and free slots as acks arrive.
export class Inflights {
  private buf: Float64Array;
  private start = 0;
  count = 0;

  constructor(readonly size: number) {
    this.buf = new Float64Array(Math.max(1, size));
  }

  full(): boolean {
    return this.count >= this.size;
  }

  add(last: number): void {
    let i = this.start + this.count;
    if (i >= this.size) i -= this.size;
    this.buf[i] = last;
    this.count++;
  }

  /** Frees every message whose last index is <= `to`. */
  freeLE(to: number): void {
    while (this.count > 0 && this.buf[this.start]! <= to) {
      this.start++;
      if (this.start >= this.size) this.start = 0;
      this.count--;
    }
    if (this.count === 0) this.start = 0;
  }

  freeFirstOne(): void {
    if (this.count === 0) return;
    this.start++;
    if (this.start >= this.size) this.start = 0;
    this.count--;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}
