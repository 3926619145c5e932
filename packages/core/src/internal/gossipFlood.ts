/**
 * The flood baseline: every new message goes to every connected peer except the one it came from, with
 * the same seen-cache, token bucket and validation as the other engines, and nothing else. It delivers
 * whatever any path can deliver, at an amplification of about the node degree: the yardstick the other
 * engines' savings are measured against.
 */
import {
  type Bucket,
  type Config,
  type Counters,
  type Engine,
  engineBaseBytes,
  makeCounters,
  mapEntryBytes,
  type Options,
  peerStateBytes,
  type PublishResult,
  seenEntryBytes,
  type Sink,
  type Sizes,
  take,
  Validation
} from "./gossipEngine.js"
import { type Data, Kind, type Message, wireBytes } from "./gossipMessage.js"
import { SeenCache } from "./gossipSeen.js"

interface PeerState {
  readonly bucket: Bucket
}

/** The flood engine for one node. */
export class FloodEngine<P, K, D> implements Engine<P, K, D> {
  readonly strategy = "flood"
  readonly counters: Counters = makeCounters()
  private readonly peers = new Map<P, PeerState>()
  private readonly topics = new Set<string>()
  private readonly seen: SeenCache<K, Data<K, D>>
  private readonly sink: Sink<P, K, D>
  private readonly validate: ((topic: string, message: Data<K, D>, from: P | undefined) => Validation) | undefined
  private nextSlowTick = 0

  constructor(options: Options<P, K, D>, readonly config: Config) {
    this.sink = options.sink
    this.validate = options.validate
    this.seen = new SeenCache(config.seenEntriesMax, config.seenWindowMs, 0)
  }

  subscribe(_now: number, topic: string): void {
    this.topics.add(topic)
  }

  unsubscribe(_now: number, topic: string): void {
    this.topics.delete(topic)
  }

  publish(now: number, topic: string, data: D, id: K, bytes: number): PublishResult {
    if (bytes > this.config.messageBytesMax) return "TooLarge"
    if (this.seen.has(id)) return "Duplicate"
    const message: Data<K, D> = { kind: Kind.Data, topic, id, data, bytes }
    if (this.validate !== undefined && this.validate(topic, message, undefined) !== Validation.Accept) return "Rejected"
    this.seen.add(now, id, undefined, 0, 0)
    this.forward(message, undefined)
    return this.peers.size === 0 ? "NoPeers" : "Published"
  }

  onMessage(now: number, from: P, message: Message<K, D, P>): void {
    this.counters.received++
    const peer = this.peers.get(from)
    if (peer === undefined) {
      this.counters.unknownPeer++
      return
    }
    if (!take(peer.bucket, now, wireBytes(message), this.config)) {
      this.counters.rateLimited++
      return
    }
    if (message.kind !== Kind.Data) return
    this.counters.receivedData++
    if (message.bytes > this.config.messageBytesMax) {
      this.counters.tooLarge++
      return
    }
    if (this.seen.has(message.id)) {
      this.counters.duplicates++
      return
    }
    const verdict = this.validate === undefined ? Validation.Accept : this.validate(message.topic, message, from)
    if (verdict === Validation.Reject) {
      this.counters.invalid++
      return
    }
    this.seen.add(now, message.id, undefined, 0, 0)
    if (verdict === Validation.Ignore) {
      this.counters.ignored++
      return
    }
    if (this.topics.has(message.topic)) {
      this.counters.delivered++
      this.sink.deliver(message, from)
    }
    this.forward(message, from)
  }

  onTick(now: number): void {
    if (now < this.nextSlowTick) return
    this.nextSlowTick = now + 1000
    this.seen.expire(now)
  }

  peerUp(now: number, peer: P): void {
    if (!this.peers.has(peer)) this.peers.set(peer, { bucket: { tokens: this.config.peerBurstBytes, at: now } })
  }

  peerDown(_now: number, peer: P): void {
    this.peers.delete(peer)
  }

  sizes(): Sizes {
    return {
      peers: this.peers.size,
      seen: this.seen.size,
      seenPayloadBytes: 0,
      missing: 0,
      pendingIhave: 0,
      dontwantMax: 0,
      retainedScores: 0,
      topicsPerPeerMax: 0
    }
  }

  /** Bytes: a fixed base, per peer its state, the seen-cache's ring slots and index entries. */
  memoryBytes(): number {
    return engineBaseBytes + this.peers.size * peerStateBytes +
      this.seen.capacity * (seenEntryBytes - mapEntryBytes) + this.seen.size * mapEntryBytes
  }

  private forward(message: Data<K, D>, from: P | undefined): void {
    for (const peer of this.peers.keys()) {
      if (peer === from) continue
      this.counters.forwarded++
      this.sink.send(peer, message)
    }
  }
}

/** A flood engine for one node. */
export const make = <P, K, D>(options: Options<P, K, D>, config: Config): Engine<P, K, D> =>
  new FloodEngine(options, config)
