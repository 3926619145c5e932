/** A small binary min-heap, for the mempool's oldest-first pick across accounts. */
export class MinHeap<A> {
  private readonly items: Array<A> = []

  constructor(private readonly less: (a: A, b: A) => boolean) {}

  get size(): number {
    return this.items.length
  }

  push(item: A): void {
    const items = this.items
    items.push(item)
    for (let at = items.length - 1; at > 0;) {
      const up = (at - 1) >> 1
      if (!this.less(items[at]!, items[up]!)) break
      ;[items[at], items[up]] = [items[up]!, items[at]!]
      at = up
    }
  }

  pop(): A | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length === 0 || last === undefined) return top
    items[0] = last
    for (let at = 0; ;) {
      const left = 2 * at + 1
      const right = left + 1
      let least = at
      if (left < items.length && this.less(items[left]!, items[least]!)) least = left
      if (right < items.length && this.less(items[right]!, items[least]!)) least = right
      if (least === at) break
      ;[items[at], items[least]] = [items[least]!, items[at]!]
      at = least
    }
    return top
  }
}
