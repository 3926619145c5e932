/**
 * The TTL-bounded, memory-bounded message store a node keeps for light clients.
 *
 * - Bounded by count (`storeMessagesMax`) and bytes (`storeBytesMax`, each message charged its encoded
 *   length plus `storeEntryOverheadBytes`). When a message does not fit, the messages with the least
 *   work per byte go first — the newcomer included: one that ranks lowest is refused, so a flood of
 *   cheap messages can only displace messages cheaper than itself.
 * - Bounded in time: an expiry sweep driven by the `Clock` every `sweepInterval` removes what expired,
 *   and reads never return an expired message in between.
 * - Lookups by ID0 prefix: messages are bucketed by their first two ID0 bytes.
 *
 * `Store` is the plain structure (no Effect per message: it runs on the receive path); the service
 * `EphemeralStore` wraps it with the clock and the sweep fiber.
 */
import type { Scope } from "effect"
import { Clock, Context, Effect, Layer, Schedule } from "effect"
import type { Values } from "./EphemeralLimits.js"
import { EphemeralLimits } from "./EphemeralLimits.js"
import type { Slot } from "./internal/heap.js"
import { IndexedHeap } from "./internal/heap.js"
import type { Message } from "./Message.js"
import * as MessageModule from "./Message.js"

/** What an insert did. */
export type InsertResult =
  | "Stored"
  | "Duplicate" // the id is stored already
  | "Expired" // its TTL has passed
  | "Refused" // the store is full of messages with at least as much work per byte
  | "TooLarge" // larger than the whole store

/** What the store counts. */
export interface Stats {
  readonly messages: number
  /** Bytes charged (encoded bytes plus the per-entry overhead). */
  readonly bytes: number
  readonly stored: number
  readonly evicted: number
  readonly expired: number
  readonly refused: number
  readonly duplicates: number
}

interface Entry {
  readonly key: string
  readonly message: Message
  readonly charged: number
  readonly expiresMs: number
  /** log2(work / encoded bytes): the eviction rank, lowest first. */
  readonly rank: number
  readonly order: number
  readonly bucket: number
  readonly byRank: Slot
  readonly byExpiry: Slot
}

const bucketOf = (id0: Uint8Array): number => (id0[0]! << 8) | id0[1]!

const startsWith = (bytes: Uint8Array, prefix: Uint8Array): boolean => {
  if (prefix.length > bytes.length) return false
  for (let index = 0; index < prefix.length; index++) if (bytes[index] !== prefix[index]) return false
  return true
}

/** The store's bounds (a subset of `EphemeralLimits`). */
export type Bounds = Pick<Values, "storeMessagesMax" | "storeBytesMax" | "storeEntryOverheadBytes" | "lookupResultsMax">

/** The plain store: synchronous, every time passed in. */
export class Store {
  private readonly entries = new Map<string, Entry>()
  private readonly buckets = new Map<number, Set<Entry>>()
  private readonly byRank = new IndexedHeap<Entry>(
    (a, b) => a.rank < b.rank || (a.rank === b.rank && a.order < b.order),
    (entry) => entry.byRank
  )
  private readonly byExpiry = new IndexedHeap<Entry>(
    (a, b) => a.expiresMs < b.expiresMs || (a.expiresMs === b.expiresMs && a.order < b.order),
    (entry) => entry.byExpiry
  )
  private bytes = 0
  private order = 0
  private readonly counters = { stored: 0, evicted: 0, expired: 0, refused: 0, duplicates: 0 }

  constructor(readonly bounds: Bounds) {}

  /**
   * Stores a validated message with `workBits` of work. `encoded` is copied, so the store never pins
   * the buffer a message arrived in.
   */
  insert(encoded: Uint8Array, workBits: number, nowMs: number): InsertResult {
    const decoded = MessageModule.decode(encoded.slice())
    // Callers insert what the validator accepted; bytes that do not decode are refused, not stored.
    if (decoded._tag === "Left") return this.refuse()
    const message = decoded.right
    const key = MessageModule.idKey(message.id)
    if (this.entries.has(key)) {
      this.counters.duplicates++
      return "Duplicate"
    }
    const expiresMs = message.ttl * 1000
    if (expiresMs <= nowMs) return "Expired"
    const charged = encoded.length + this.bounds.storeEntryOverheadBytes
    if (charged > this.bounds.storeBytesMax || this.bounds.storeMessagesMax < 1) return this.refuse("TooLarge")
    const rank = workBits - Math.log2(encoded.length)
    if (!this.makeRoom(charged, rank)) return this.refuse()
    const entry: Entry = {
      key,
      message,
      charged,
      expiresMs,
      rank,
      order: this.order++,
      bucket: bucketOf(message.id),
      byRank: { index: -1 },
      byExpiry: { index: -1 }
    }
    this.add(entry)
    this.counters.stored++
    return "Stored"
  }

  /** The message with this id, unless expired. */
  get(id: Uint8Array, nowMs: number): Message | undefined {
    const entry = this.entries.get(MessageModule.idKey(id))
    return entry !== undefined && entry.expiresMs > nowMs ? entry.message : undefined
  }

  /** Live messages whose ID0 starts with `prefix` (up to 32 bytes; empty matches all), at most `lookupResultsMax`. */
  lookup(prefix: Uint8Array, nowMs: number): Array<Message> {
    const results: Array<Message> = []
    const max = this.bounds.lookupResultsMax
    const scan = (entries: Iterable<Entry>): boolean => {
      for (const entry of entries) {
        if (entry.expiresMs > nowMs && startsWith(entry.message.id, prefix)) results.push(entry.message)
        if (results.length >= max) return false
      }
      return true
    }
    if (prefix.length >= 2) {
      scan(this.buckets.get(bucketOf(prefix)) ?? [])
    } else if (prefix.length === 1) {
      for (let low = 0; low < 256 && scan(this.buckets.get((prefix[0]! << 8) | low) ?? []); low++);
    } else {
      scan(this.entries.values())
    }
    return results
  }

  /** Removes every message whose TTL has passed; returns how many. */
  sweep(nowMs: number): number {
    let removed = 0
    for (let entry = this.byExpiry.peek(); entry !== undefined && entry.expiresMs <= nowMs; entry = this.byExpiry.peek()) {
      this.delete(entry)
      removed++
    }
    this.counters.expired += removed
    return removed
  }

  stats(): Stats {
    return { messages: this.entries.size, bytes: this.bytes, ...this.counters }
  }

  private refuse(result: InsertResult = "Refused"): InsertResult {
    this.counters.refused++
    return result
  }

  /** Evicts lower-ranked messages until `charged` more bytes and one more message fit; false if it cannot. */
  private makeRoom(charged: number, rank: number): boolean {
    const fits = () => this.entries.size < this.bounds.storeMessagesMax && this.bytes + charged <= this.bounds.storeBytesMax
    if (fits()) return true
    // Check first that enough cheaper messages exist: nothing is evicted for a newcomer that is refused.
    let freedBytes = 0
    let freedCount = 0
    const victims: Array<Entry> = []
    while (!(this.entries.size - freedCount < this.bounds.storeMessagesMax && this.bytes - freedBytes + charged <= this.bounds.storeBytesMax)) {
      const lowest = this.byRank.pop()
      if (lowest === undefined || lowest.rank >= rank) {
        if (lowest !== undefined) this.byRank.push(lowest)
        for (const victim of victims) this.byRank.push(victim)
        return false
      }
      victims.push(lowest)
      freedBytes += lowest.charged
      freedCount++
    }
    for (const victim of victims) {
      // Already out of the rank heap: delete takes it from the rest.
      this.delete(victim)
      this.counters.evicted++
    }
    return true
  }

  private add(entry: Entry): void {
    this.entries.set(entry.key, entry)
    let bucket = this.buckets.get(entry.bucket)
    if (bucket === undefined) {
      bucket = new Set()
      this.buckets.set(entry.bucket, bucket)
    }
    bucket.add(entry)
    this.byRank.push(entry)
    this.byExpiry.push(entry)
    this.bytes += entry.charged
  }

  private delete(entry: Entry): void {
    this.entries.delete(entry.key)
    const bucket = this.buckets.get(entry.bucket)
    bucket?.delete(entry)
    if (bucket?.size === 0) this.buckets.delete(entry.bucket)
    this.byRank.remove(entry)
    this.byExpiry.remove(entry)
    this.bytes -= entry.charged
  }
}

/** The store as a node service: the clock reads the time, a fiber sweeps. */
export class EphemeralStore extends Context.Tag("@weft/ephemeral/EphemeralStore")<EphemeralStore, {
  /** Stores a message the validator accepted, with the work it showed. */
  readonly insert: (encoded: Uint8Array, workBits: number) => Effect.Effect<InsertResult>
  readonly get: (id: Uint8Array) => Effect.Effect<Message | undefined>
  readonly lookup: (prefix: Uint8Array) => Effect.Effect<ReadonlyArray<Message>>
  readonly sweep: Effect.Effect<number>
  readonly stats: Effect.Effect<Stats>
  /** The plain store, for callers on a synchronous path (the gossip validator). */
  readonly unsafeStore: Store
}>() {}

/** Builds the service and runs its sweep for as long as the scope lives. */
export const make: Effect.Effect<EphemeralStore["Type"], never, EphemeralLimits | Scope.Scope> = Effect.gen(function*() {
  const limits = yield* EphemeralLimits
  const store = new Store(limits)
  const now = Clock.currentTimeMillis
  const sweep = Effect.map(now, (nowMs) => store.sweep(nowMs))
  yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(limits.sweepInterval)))
  return EphemeralStore.of({
    insert: (encoded, workBits) => Effect.map(now, (nowMs) => store.insert(encoded, workBits, nowMs)),
    get: (id) => Effect.map(now, (nowMs) => store.get(id, nowMs)),
    lookup: (prefix) => Effect.map(now, (nowMs) => store.lookup(prefix, nowMs)),
    sweep,
    stats: Effect.sync(() => store.stats()),
    unsafeStore: store
  })
})

/** The store service. */
export const layer: Layer.Layer<EphemeralStore, never, EphemeralLimits> = Layer.scoped(EphemeralStore, make)
