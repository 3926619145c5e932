/**
 * The time-windowed, bounded seen-cache (with the message cache folded in) every gossip engine uses.
 *
 * Entries live in insertion order in a ring that grows by doubling up to `entriesMax`, so an idle node
 * holds a few slots and a busy one never more than the bound. An id is remembered for `windowMs`; its
 * payload only for the shorter `payloadWindowMs` (long enough to answer IWANT/GRAFT, short enough that
 * memory follows the message rate, not the seen window). When the ring is full the oldest entry is
 * evicted early and counted: with `windowMs` well above the longest repair time, a message can then
 * never land back on a node that already had it.
 */

/** A seen-cache over ids `K` holding payloads `V`. */
export class SeenCache<K, V> {
  private readonly index = new Map<K, number>()
  private ids: Array<K | undefined>
  private times: Array<number>
  private values: Array<V | undefined>
  private flags: Array<number>
  private sizes: Array<number>
  private mask: number
  /** Sequence number of the oldest entry; entries are [tail, head). */
  private tail = 0
  private head = 0
  /** Entries below this sequence number have had their payload released. */
  private payloadTail = 0
  /** Payload bytes currently held (for memory estimates). */
  payloadBytes = 0
  /** Entries evicted before their window ran out because the cache was full. */
  evictedEarly = 0

  constructor(
    readonly entriesMax: number,
    readonly windowMs: number,
    readonly payloadWindowMs: number,
    initialSlots = 16
  ) {
    let slots = 1
    while (slots < initialSlots) slots *= 2
    this.ids = new Array(slots)
    this.times = new Array(slots).fill(0)
    this.values = new Array(slots)
    this.flags = new Array(slots).fill(0)
    this.sizes = new Array(slots).fill(0)
    this.mask = slots - 1
  }

  /** Entries held. */
  get size(): number {
    return this.head - this.tail
  }

  /** Slots allocated (grows by doubling, never past the next power of two above `entriesMax`). */
  get capacity(): number {
    return this.mask + 1
  }

  /** Whether `id` was seen within the window. */
  has(id: K): boolean {
    return this.index.has(id)
  }

  /** The flags stored with `id`, or -1 when unseen. */
  flagsOf(id: K): number {
    const seq = this.index.get(id)
    return seq === undefined ? -1 : this.flags[seq & this.mask]!
  }

  /** The payload of `id` if it is still within the payload window. */
  payload(id: K): V | undefined {
    const seq = this.index.get(id)
    return seq === undefined || seq < this.payloadTail ? undefined : this.values[seq & this.mask]
  }

  /**
   * Records `id` (unseen: the caller checked `has`), with its payload (`undefined` for none), payload
   * size and flags.
   */
  add(now: number, id: K, value: V | undefined, bytes: number, flags: number): void {
    if (this.size >= this.entriesMax) {
      this.evictOldest()
      this.evictedEarly++
    } else if (this.size > this.mask) {
      this.grow()
    }
    const slot = this.head & this.mask
    this.ids[slot] = id
    this.times[slot] = now
    this.values[slot] = value
    this.flags[slot] = flags
    const held = value === undefined ? 0 : bytes
    this.sizes[slot] = held
    this.payloadBytes += held
    this.index.set(id, this.head)
    this.head++
  }

  /** Forgets ids older than the window and releases payloads older than the payload window. */
  expire(now: number): void {
    const payloadCutoff = now - this.payloadWindowMs
    if (this.payloadTail < this.tail) this.payloadTail = this.tail
    while (this.payloadTail < this.head && this.times[this.payloadTail & this.mask]! < payloadCutoff) {
      this.releasePayload(this.payloadTail & this.mask)
      this.payloadTail++
    }
    const cutoff = now - this.windowMs
    while (this.tail < this.head && this.times[this.tail & this.mask]! < cutoff) this.evictOldest()
  }

  /** Calls `f` for each id recorded at or after `since` with its payload still held, oldest first. */
  forEachRecent(since: number, f: (id: K, value: V) => void): void {
    let seq = this.head - 1
    const floor = Math.max(this.tail, this.payloadTail)
    while (seq >= floor && this.times[seq & this.mask]! >= since) seq--
    for (seq++; seq < this.head; seq++) {
      const value = this.values[seq & this.mask]
      if (value !== undefined) f(this.ids[seq & this.mask]!, value)
    }
  }

  private releasePayload(slot: number): void {
    this.payloadBytes -= this.sizes[slot]!
    this.sizes[slot] = 0
    this.values[slot] = undefined
  }

  private evictOldest(): void {
    const slot = this.tail & this.mask
    this.index.delete(this.ids[slot]!)
    this.releasePayload(slot)
    this.ids[slot] = undefined
    this.tail++
    if (this.payloadTail < this.tail) this.payloadTail = this.tail
  }

  private grow(): void {
    const slots = (this.mask + 1) * 2
    const mask = slots - 1
    const ids = new Array<K | undefined>(slots)
    const times = new Array<number>(slots).fill(0)
    const values = new Array<V | undefined>(slots)
    const flags = new Array<number>(slots).fill(0)
    const sizes = new Array<number>(slots).fill(0)
    for (let seq = this.tail; seq < this.head; seq++) {
      const from = seq & this.mask
      const to = seq & mask
      ids[to] = this.ids[from]
      times[to] = this.times[from]!
      values[to] = this.values[from]
      flags[to] = this.flags[from]!
      sizes[to] = this.sizes[from]!
    }
    this.ids = ids
    this.times = times
    this.values = values
    this.flags = flags
    this.sizes = sizes
    this.mask = mask
  }
}
