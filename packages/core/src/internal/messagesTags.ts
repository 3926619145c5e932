/**
 * The per-tag table of the message layer: each tag someone handles or subscribes to has an event log
 * (a ring of the last `eventRetainedMessages`, numbered from 1 on delivery), its live subscribers and
 * its handlers. Tags are only created by local calls (`handle`, `handleStream`, `events`), never by
 * inbound traffic, and the table keeps at most `eventTagsMax` of them while any is evictable.
 */
import type { Mailbox } from "effect"
import type { Incoming } from "../Messages.js"
import type { NodeId } from "../NodeId.js"

/** A fixed-capacity ring of the newest messages of one tag. */
export class RingLog {
  private readonly items: Array<Incoming> = []
  private start = 0

  constructor(private readonly capacity: number) {}

  /** Messages retained. */
  get size(): number {
    return this.items.length
  }

  /** Appends, overwriting the oldest once full. */
  push(message: Incoming): void {
    if (this.capacity <= 0) return
    if (this.items.length < this.capacity) {
      this.items.push(message)
      return
    }
    this.items[this.start] = message
    this.start = (this.start + 1) % this.capacity
  }

  /** Retained messages with a sequence number above `seq`, oldest first (all retained ones if `seq` is older). */
  since(seq: number): Array<Incoming> {
    const out: Array<Incoming> = []
    for (let index = 0; index < this.items.length; index++) {
      const message = this.items[(this.start + index) % this.items.length]!
      if (message.seq > seq) out.push(message)
    }
    return out
  }
}

/** One live `events` consumer: a sliding buffer of `capacity`. */
export interface Subscriber {
  readonly mailbox: Mailbox.Mailbox<Incoming>
  readonly capacity: number
}

/** The state of one tag; `H` is the message layer's handler type. */
export class TagEntry<H> {
  handler: H | undefined = undefined
  streamHandler: H | undefined = undefined
  readonly subscribers = new Set<Subscriber>()
  private nextSeq = 1

  constructor(readonly tag: string, readonly log: RingLog) {}

  /** Whether something local still uses the tag (only unpinned tags may be evicted). */
  get pinned(): boolean {
    return this.handler !== undefined || this.streamHandler !== undefined || this.subscribers.size > 0
  }

  /** Numbers a delivered message, retains it and pushes it to every subscriber; returns the drops. */
  append(peer: NodeId, body: unknown): { readonly message: Incoming; readonly dropped: number } {
    const message: Incoming = { peer, tag: this.tag, body, seq: this.nextSeq++ }
    this.log.push(message)
    let dropped = 0
    for (const subscriber of this.subscribers) {
      const size = subscriber.mailbox.unsafeSize()
      // A sliding mailbox drops its oldest silently: count it here.
      if (size._tag === "Some" && size.value >= subscriber.capacity) dropped++
      subscriber.mailbox.unsafeOffer(message)
    }
    return { message, dropped }
  }
}

/** The tags of one node, least recently used first. */
export class TagTable<H> {
  private readonly entries = new Map<string, TagEntry<H>>()
  /** The most recently used entry, whose re-insertion is skipped. */
  private newest: TagEntry<H> | undefined = undefined

  constructor(private readonly tagsMax: number, private readonly retainedMessages: number) {}

  /** Tags with an entry. */
  get size(): number {
    return this.entries.size
  }

  /** Subscribers over all tags. */
  get subscribers(): number {
    let count = 0
    for (const entry of this.entries.values()) count += entry.subscribers.size
    return count
  }

  /** The entry of a tag if it has one, marked as recently used. */
  lookup(tag: string): TagEntry<H> | undefined {
    const entry = this.entries.get(tag)
    if (entry !== undefined && this.newest !== entry) {
      this.entries.delete(tag)
      this.entries.set(tag, entry)
      this.newest = entry
    }
    return entry
  }

  /**
   * The entry of a tag, created if needed. At `tagsMax` the least recently used unpinned tag is
   * forgotten (its log and numbering with it); if every tag is pinned, `undefined`.
   */
  obtainWithin(tag: string): TagEntry<H> | undefined {
    const existing = this.lookup(tag)
    if (existing !== undefined) return existing
    if (this.entries.size >= this.tagsMax && !this.evictOne()) return undefined
    return this.create(tag)
  }

  /**
   * Like `obtainWithin`, but goes over `tagsMax` when every tag is pinned: handlers are the node's own
   * configuration, each held by a scope, so their number is the node builder's to bound.
   */
  obtain(tag: string): TagEntry<H> {
    return this.obtainWithin(tag) ?? this.create(tag)
  }

  private create(tag: string): TagEntry<H> {
    const entry = new TagEntry<H>(tag, new RingLog(this.retainedMessages))
    this.entries.set(tag, entry)
    this.newest = entry
    return entry
  }

  private evictOne(): boolean {
    for (const [tag, entry] of this.entries) {
      if (!entry.pinned) {
        this.entries.delete(tag)
        if (this.newest === entry) this.newest = undefined
        return true
      }
    }
    return false
  }
}
