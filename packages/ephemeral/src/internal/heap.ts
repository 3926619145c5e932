/**
 * An indexed binary min-heap: each item knows its slot, so removing any item is O(log n) and the heap
 * never holds dead entries (a store under churn keeps it exactly as large as the store).
 */

/** Where an item sits in one heap (the item carries one slot per heap it is in). */
export interface Slot {
  index: number
}

/** A min-heap over items ordered by `less`, reading each item's slot with `slot`. */
export class IndexedHeap<T> {
  private readonly items: Array<T> = []

  constructor(
    private readonly less: (a: T, b: T) => boolean,
    private readonly slot: (item: T) => Slot
  ) {}

  get size(): number {
    return this.items.length
  }

  peek(): T | undefined {
    return this.items[0]
  }

  push(item: T): void {
    this.items.push(item)
    this.slot(item).index = this.items.length - 1
    this.up(this.items.length - 1)
  }

  pop(): T | undefined {
    const top = this.items[0]
    if (top !== undefined) this.remove(top)
    return top
  }

  remove(item: T): void {
    const index = this.slot(item).index
    if (index < 0 || this.items[index] !== item) return
    const last = this.items.pop()!
    this.slot(item).index = -1
    if (index === this.items.length) return
    this.items[index] = last
    this.slot(last).index = index
    this.down(index)
    this.up(index)
  }

  clear(): void {
    for (const item of this.items) this.slot(item).index = -1
    this.items.length = 0
  }

  private swap(a: number, b: number): void {
    const items = this.items
    const itemA = items[a]!
    const itemB = items[b]!
    items[a] = itemB
    items[b] = itemA
    this.slot(itemB).index = a
    this.slot(itemA).index = b
  }

  private up(index: number): void {
    while (index > 0) {
      const parent = (index - 1) >> 1
      if (!this.less(this.items[index]!, this.items[parent]!)) return
      this.swap(index, parent)
      index = parent
    }
  }

  private down(index: number): void {
    const length = this.items.length
    for (;;) {
      const left = index * 2 + 1
      const right = left + 1
      let smallest = index
      if (left < length && this.less(this.items[left]!, this.items[smallest]!)) smallest = left
      if (right < length && this.less(this.items[right]!, this.items[smallest]!)) smallest = right
      if (smallest === index) return
      this.swap(index, smallest)
      index = smallest
    }
  }
}
