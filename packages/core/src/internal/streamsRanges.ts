/**
 * A set of integers as sorted, disjoint, non-adjacent half-open ranges [start, end). The stream layer
 * keeps acknowledged and lost byte ranges and received packet numbers in these. Plain code over one
 * flat array (`[s0, e0, s1, e1, …]`): no allocation per query, binary search per update.
 */
export class RangeSet {
  private readonly bounds: Array<number> = []

  /** Number of ranges. */
  get size(): number {
    return this.bounds.length >> 1
  }

  /** Start of range `index` (ascending order). */
  start(index: number): number {
    return this.bounds[index * 2]!
  }

  /** End (exclusive) of range `index`. */
  end(index: number): number {
    return this.bounds[index * 2 + 1]!
  }

  /** Whether `value` is in the set. */
  has(value: number): boolean {
    const index = this.firstEndingAfter(value)
    return index < this.size && this.start(index) <= value
  }

  /** Adds [start, end), merging with overlapping or adjacent ranges. */
  add(start: number, end: number): void {
    if (end <= start) return
    const bounds = this.bounds
    const first = this.firstEndingAtOrAfter(start)
    let last = first
    let low = start
    let high = end
    while (last < this.size && bounds[last * 2]! <= high) {
      low = Math.min(low, bounds[last * 2]!)
      high = Math.max(high, bounds[last * 2 + 1]!)
      last++
    }
    bounds.splice(first * 2, (last - first) * 2, low, high)
  }

  /** Removes [start, end). */
  remove(start: number, end: number): void {
    if (end <= start) return
    const bounds = this.bounds
    const first = this.firstEndingAfter(start)
    let last = first
    const pieces: Array<number> = []
    while (last < this.size && bounds[last * 2]! < end) {
      const rangeStart = bounds[last * 2]!
      const rangeEnd = bounds[last * 2 + 1]!
      if (rangeStart < start) pieces.push(rangeStart, start)
      if (rangeEnd > end) pieces.push(end, rangeEnd)
      last++
    }
    if (last > first) bounds.splice(first * 2, (last - first) * 2, ...pieces)
  }

  /** Forgets the lowest range. */
  dropFirst(): void {
    this.bounds.splice(0, 2)
  }

  /** Index of the first range whose end is > value. */
  private firstEndingAfter(value: number): number {
    let low = 0
    let high = this.size
    while (low < high) {
      const middle = (low + high) >> 1
      if (this.end(middle) > value) high = middle
      else low = middle + 1
    }
    return low
  }

  /** Index of the first range whose end is >= value (so an adjacent range merges). */
  private firstEndingAtOrAfter(value: number): number {
    let low = 0
    let high = this.size
    while (low < high) {
      const middle = (low + high) >> 1
      if (this.end(middle) >= value) high = middle
      else low = middle + 1
    }
    return low
  }
}
