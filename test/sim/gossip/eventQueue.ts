/**
 * The simulator's event queue: a binary min-heap of event slots ordered by (time, insertion sequence),
 * with every field in a growable typed array and slots recycled through a free list, so scheduling an
 * event allocates nothing. Ties break by insertion order, which keeps a run a pure function of its seed.
 */

/** A pooled, allocation-free discrete-event queue. */
export class EventQueue {
  time = new Float64Array(1024)
  seq = new Float64Array(1024)
  kind = new Uint8Array(1024)
  a = new Int32Array(1024)
  b = new Int32Array(1024)
  ref: Array<unknown> = new Array(1024)
  private heap = new Int32Array(1024)
  private free = new Int32Array(1024)
  private freeCount = 0
  private slots = 0
  private counter = 0
  size = 0

  /** Schedules an event; returns nothing, the slot is internal. */
  push(time: number, kind: number, a: number, b: number, ref: unknown): void {
    const slot = this.allocate()
    this.time[slot] = time
    this.seq[slot] = this.counter++
    this.kind[slot] = kind
    this.a[slot] = a
    this.b[slot] = b
    this.ref[slot] = ref
    if (this.size === this.heap.length) this.heap = grow(this.heap, this.heap.length * 2) as Int32Array<ArrayBuffer>
    let i = this.size++
    const heap = this.heap
    const times = this.time
    const seqs = this.seq
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = heap[parent]!
      if (times[p]! < time || (times[p] === time && seqs[p]! < seqs[slot]!)) break
      heap[i] = p
      i = parent
    }
    heap[i] = slot
  }

  /** Removes the earliest event and returns its slot; read its fields, then `release(slot)`. */
  pop(): number {
    const heap = this.heap
    const top = heap[0]!
    const last = heap[--this.size]!
    const n = this.size
    const times = this.time
    const seqs = this.seq
    const lastTime = times[last]!
    const lastSeq = seqs[last]!
    let i = 0
    for (;;) {
      let child = 2 * i + 1
      if (child >= n) break
      const right = child + 1
      if (right < n) {
        const c = heap[child]!
        const r = heap[right]!
        if (times[r]! < times[c]! || (times[r] === times[c] && seqs[r]! < seqs[c]!)) child = right
      }
      const c = heap[child]!
      if (lastTime < times[c]! || (lastTime === times[c] && lastSeq < seqs[c]!)) break
      heap[i] = c
      i = child
    }
    heap[i] = last
    return top
  }

  /** Returns a popped slot to the pool. */
  release(slot: number): void {
    this.ref[slot] = undefined
    if (this.freeCount === this.free.length) this.free = grow(this.free, this.free.length * 2) as Int32Array<ArrayBuffer>
    this.free[this.freeCount++] = slot
  }

  /** The time of the earliest event (the queue must not be empty). */
  peekTime(): number {
    return this.time[this.heap[0]!]!
  }

  private allocate(): number {
    if (this.freeCount > 0) return this.free[--this.freeCount]!
    if (this.slots === this.time.length) {
      const capacity = this.time.length * 2
      this.time = grow(this.time, capacity) as Float64Array<ArrayBuffer>
      this.seq = grow(this.seq, capacity) as Float64Array<ArrayBuffer>
      this.kind = grow(this.kind, capacity) as Uint8Array<ArrayBuffer>
      this.a = grow(this.a, capacity) as Int32Array<ArrayBuffer>
      this.b = grow(this.b, capacity) as Int32Array<ArrayBuffer>
      this.ref.length = capacity
    }
    return this.slots++
  }
}

type Typed = Float64Array<ArrayBuffer> | Int32Array<ArrayBuffer> | Uint8Array<ArrayBuffer>

const grow = (array: Typed, capacity: number): Typed => {
  const next = new (array.constructor as new (n: number) => Typed)(capacity)
  next.set(array)
  return next
}
