/**
 * The GossipSub-v1.1-like baseline, faithful enough for a fair comparison: a mesh per topic kept between
 * `meshDegreeLow` and `meshDegreeHigh` around `meshDegree` (D=6, Dlo=4, Dhi=12) by a heartbeat with
 * GRAFT/PRUNE and a prune backoff; full messages pushed over the mesh; each heartbeat an IHAVE with the
 * ids of the last `gossipWindowMs` to `gossipDegree` (D_lazy=6) random non-mesh peers; IWANT for ids not
 * seen (one outstanding request per id); a message cache of five heartbeats; a seen-cache; P4-style
 * scoring of invalid messages (quadratic, decaying) that graylists. Left out, as they do not change
 * dissemination cost in the simulator: flood-publish, fanout maps, promises, opportunistic grafting,
 * outbound quotas, P1–P3/P5–P7 score terms.
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
  sample,
  seenEntryBytes,
  type Sink,
  type Sizes,
  take,
  Validation
} from "./gossipEngine.js"
import { type Data, Kind, type Message, wireBytes } from "./gossipMessage.js"
import type { Prng } from "./prng.js"
import { SeenCache } from "./gossipSeen.js"

/** Requests outstanding longer than this may be asked of another peer. */
const IWANT_FOLLOWUP_MS = 1000
/** Below this score a peer's gossip is ignored; below the graylist everything is. */
const GOSSIP_THRESHOLD = -10
const GRAYLIST_THRESHOLD = -80

interface PeerState<P> {
  readonly id: P
  readonly topics: Set<string>
  readonly bucket: Bucket
  invalid: number
  served: number
}

interface TopicState<P> {
  readonly name: string
  readonly mesh: Set<P>
  readonly backoff: Map<P, number>
}

/** The GossipSub-like engine for one node. */
export class GossipSubEngine<P, K, D> implements Engine<P, K, D> {
  readonly strategy = "gossipsub"
  readonly counters: Counters = makeCounters()
  private readonly peers = new Map<P, PeerState<P>>()
  private readonly topics = new Map<string, TopicState<P>>()
  private readonly requested = new Map<K, number>()
  private readonly seen: SeenCache<K, Data<K, D>>
  private readonly sink: Sink<P, K, D>
  private readonly prng: Prng
  private readonly validate: ((topic: string, message: Data<K, D>, from: P | undefined) => Validation) | undefined
  private nextHeartbeat = 0

  constructor(options: Options<P, K, D>, readonly config: Config) {
    this.sink = options.sink
    this.prng = options.prng
    this.validate = options.validate
    const cacheMs = Math.min(config.payloadWindowMs, 5 * config.heartbeatMs)
    this.seen = new SeenCache(config.seenEntriesMax, config.seenWindowMs, cacheMs)
  }

  subscribe(_now: number, topic: string): void {
    if (this.topics.has(topic)) return
    this.topics.set(topic, { name: topic, mesh: new Set(), backoff: new Map() })
    this.broadcast({ kind: Kind.Subscribe, topics: [topic], subscribe: true })
  }

  unsubscribe(_now: number, topic: string): void {
    const state = this.topics.get(topic)
    if (state === undefined) return
    for (const peer of state.mesh) this.sink.send(peer, { kind: Kind.Prune, topic })
    this.topics.delete(topic)
    this.broadcast({ kind: Kind.Subscribe, topics: [topic], subscribe: false })
  }

  publish(now: number, topic: string, data: D, id: K, bytes: number): PublishResult {
    if (bytes > this.config.messageBytesMax) return "TooLarge"
    if (this.seen.has(id)) return "Duplicate"
    const message: Data<K, D> = { kind: Kind.Data, topic, id, data, bytes }
    if (this.validate !== undefined && this.validate(topic, message, undefined) !== Validation.Accept) return "Rejected"
    this.seen.add(now, id, message, bytes, 0)
    const state = this.topics.get(topic)
    if (state !== undefined && state.mesh.size > 0) {
      this.forward(state, message, undefined)
      return "Published"
    }
    const candidates: Array<P> = []
    for (const peer of this.peers.values()) if (peer.topics.has(topic)) candidates.push(peer.id)
    const chosen = sample(candidates, this.config.meshDegree, this.prng)
    for (const peer of chosen) this.sink.send(peer, message)
    return chosen.length === 0 ? "NoPeers" : "Published"
  }

  onMessage(now: number, from: P, message: Message<K, D, P>): void {
    this.counters.received++
    const peer = this.peers.get(from)
    if (peer === undefined) {
      this.counters.unknownPeer++
      return
    }
    if (this.score(peer) < GRAYLIST_THRESHOLD) {
      this.counters.graylisted++
      return
    }
    if (!take(peer.bucket, now, wireBytes(message), this.config)) {
      this.counters.rateLimited++
      return
    }
    switch (message.kind) {
      case Kind.Data:
        return this.onData(now, peer, message)
      case Kind.Ihave:
        return this.onIhave(now, peer, message.topic, message.ids)
      case Kind.Iwant:
        return this.serve(peer, message.ids)
      case Kind.Graft:
        return this.onGraft(now, peer, message.topic)
      case Kind.Prune:
        return this.onPrune(now, peer, message.topic)
      case Kind.Idontwant:
        return
      case Kind.Subscribe:
        return this.onSubscribe(peer, message.topics, message.subscribe)
    }
  }

  onTick(now: number): void {
    if (now < this.nextHeartbeat) return
    this.nextHeartbeat = now + this.config.heartbeatMs
    for (const peer of this.peers.values()) {
      peer.served = 0
      peer.invalid = peer.invalid * this.config.scoreDecay
      if (peer.invalid < 0.01) peer.invalid = 0
    }
    for (const state of this.topics.values()) {
      this.maintainMesh(now, state)
      this.emitGossip(now, state)
    }
    for (const [id, at] of this.requested) {
      if (now - at >= IWANT_FOLLOWUP_MS) this.requested.delete(id)
    }
    this.seen.expire(now)
  }

  peerUp(now: number, id: P): void {
    if (this.peers.has(id)) return
    this.peers.set(id, { id, topics: new Set(), bucket: { tokens: this.config.peerBurstBytes, at: now }, invalid: 0, served: 0 })
    if (this.topics.size > 0) this.sink.send(id, { kind: Kind.Subscribe, topics: [...this.topics.keys()], subscribe: true })
  }

  peerDown(_now: number, id: P): void {
    if (!this.peers.delete(id)) return
    for (const state of this.topics.values()) {
      state.mesh.delete(id)
      state.backoff.delete(id)
    }
  }

  sizes(): Sizes {
    let topicsPerPeerMax = 0
    for (const peer of this.peers.values()) topicsPerPeerMax = Math.max(topicsPerPeerMax, peer.topics.size)
    return {
      peers: this.peers.size,
      seen: this.seen.size,
      seenPayloadBytes: this.seen.payloadBytes,
      missing: this.requested.size,
      pendingIhave: 0,
      dontwantMax: 0,
      retainedScores: 0,
      topicsPerPeerMax
    }
  }

  /** Bytes: as the Weft engine (base, peers, topic sets, seen-cache and held payloads, outstanding requests). */
  memoryBytes(): number {
    let bytes = engineBaseBytes + this.peers.size * peerStateBytes
    for (const peer of this.peers.values()) bytes += peer.topics.size * mapEntryBytes
    for (const state of this.topics.values()) bytes += 128 + (state.mesh.size + state.backoff.size) * mapEntryBytes
    bytes += this.seen.capacity * (seenEntryBytes - mapEntryBytes) + this.seen.size * mapEntryBytes
    return bytes + this.seen.payloadBytes + this.requested.size * mapEntryBytes
  }

  private score(peer: PeerState<P>): number {
    return -(peer.invalid * peer.invalid)
  }

  private onData(now: number, peer: PeerState<P>, message: Data<K, D>): void {
    this.counters.receivedData++
    if (message.bytes > this.config.messageBytesMax) {
      this.counters.tooLarge++
      peer.invalid++
      return
    }
    if (this.seen.has(message.id)) {
      this.counters.duplicates++
      return
    }
    const state = this.topics.get(message.topic)
    if (state === undefined) {
      this.counters.notSubscribed++
      return
    }
    const verdict = this.validate === undefined ? Validation.Accept : this.validate(message.topic, message, peer.id)
    if (verdict === Validation.Reject) {
      this.counters.invalid++
      peer.invalid++
      return
    }
    this.requested.delete(message.id)
    if (verdict === Validation.Ignore) {
      this.counters.ignored++
      return this.seen.add(now, message.id, undefined, 0, 0)
    }
    this.seen.add(now, message.id, message, message.bytes, 0)
    this.counters.delivered++
    this.sink.deliver(message, peer.id)
    this.forward(state, message, peer.id)
  }

  private forward(state: TopicState<P>, message: Data<K, D>, from: P | undefined): void {
    for (const id of state.mesh) {
      if (id === from) continue
      this.counters.forwarded++
      this.sink.send(id, message)
    }
  }

  private onIhave(now: number, peer: PeerState<P>, topic: string, ids: ReadonlyArray<K>): void {
    if (!this.topics.has(topic) || this.score(peer) < GOSSIP_THRESHOLD) return
    const count = Math.min(ids.length, this.config.ihaveIdsMax)
    this.counters.ihaveIdsDropped += ids.length - count
    let wanted: Array<K> | undefined
    for (let i = 0; i < count; i++) {
      const id = ids[i]!
      if (this.seen.has(id) || this.requested.has(id)) continue
      if (this.requested.size >= this.config.missingEntriesMax) {
        this.counters.missingDropped++
        continue
      }
      wanted ??= []
      if (wanted.length >= this.config.iwantIdsMax) break
      wanted.push(id)
      this.requested.set(id, now)
    }
    if (wanted === undefined) return
    this.counters.iwantIdsSent += wanted.length
    this.sink.send(peer.id, { kind: Kind.Iwant, ids: wanted })
  }

  private serve(peer: PeerState<P>, ids: ReadonlyArray<K>): void {
    const count = Math.min(ids.length, this.config.iwantIdsMax)
    this.counters.iwantIdsDropped += ids.length - count
    for (let i = 0; i < count; i++) {
      if (peer.served >= this.config.iwantServedPerPeerPerSecond) {
        this.counters.iwantIdsDropped += count - i
        return
      }
      const message = this.seen.payload(ids[i]!)
      if (message === undefined) continue
      peer.served++
      this.counters.iwantIdsServed++
      this.sink.send(peer.id, message)
    }
  }

  private onGraft(now: number, peer: PeerState<P>, topic: string): void {
    const state = this.topics.get(topic)
    if (state === undefined || !peer.topics.has(topic)) return
    const backoff = state.backoff.get(peer.id)
    if ((backoff !== undefined && backoff > now) || this.score(peer) < 0 || state.mesh.size >= this.config.meshDegreeHigh) {
      this.counters.prunesSent++
      return this.sink.send(peer.id, { kind: Kind.Prune, topic })
    }
    state.mesh.add(peer.id)
  }

  private onPrune(now: number, peer: PeerState<P>, topic: string): void {
    const state = this.topics.get(topic)
    if (state === undefined) return
    state.mesh.delete(peer.id)
    state.backoff.set(peer.id, now + this.config.pruneBackoffMs)
  }

  private onSubscribe(peer: PeerState<P>, topics: ReadonlyArray<string>, subscribe: boolean): void {
    for (const topic of topics) {
      if (!subscribe) {
        peer.topics.delete(topic)
        this.topics.get(topic)?.mesh.delete(peer.id)
      } else if (peer.topics.size < this.config.topicsPerPeerMax) {
        peer.topics.add(topic)
      } else {
        this.counters.topicsDropped++
      }
    }
  }

  private maintainMesh(now: number, state: TopicState<P>): void {
    for (const [id, until] of state.backoff) if (until <= now) state.backoff.delete(id)
    for (const id of state.mesh) {
      if (this.score(this.peers.get(id)!) < 0) this.prune(now, state, id)
    }
    if (state.mesh.size < this.config.meshDegreeLow) {
      const candidates: Array<P> = []
      for (const peer of this.peers.values()) {
        if (!peer.topics.has(state.name) || state.mesh.has(peer.id) || state.backoff.has(peer.id)) continue
        if (this.score(peer) >= 0) candidates.push(peer.id)
      }
      for (const id of sample(candidates, this.config.meshDegree - state.mesh.size, this.prng)) {
        state.mesh.add(id)
        this.counters.graftsSent++
        this.sink.send(id, { kind: Kind.Graft, topic: state.name, ids: [] })
      }
    } else if (state.mesh.size > this.config.meshDegreeHigh) {
      const members = sample([...state.mesh], state.mesh.size, this.prng)
      for (let i = this.config.meshDegree; i < members.length; i++) this.prune(now, state, members[i]!)
    }
  }

  private prune(now: number, state: TopicState<P>, id: P): void {
    state.mesh.delete(id)
    state.backoff.set(id, now + this.config.pruneBackoffMs)
    this.counters.prunesSent++
    this.sink.send(id, { kind: Kind.Prune, topic: state.name })
  }

  private emitGossip(now: number, state: TopicState<P>): void {
    const ids: Array<K> = []
    const limit = this.config.ihaveIdsMax
    this.seen.forEachRecent(now - this.config.gossipWindowMs, (id, message) => {
      if (message.topic === state.name && ids.length < limit) ids.push(id)
    })
    if (ids.length === 0) return
    const candidates: Array<P> = []
    for (const peer of this.peers.values()) {
      if (!peer.topics.has(state.name) || state.mesh.has(peer.id)) continue
      if (this.score(peer) >= GOSSIP_THRESHOLD) candidates.push(peer.id)
    }
    const message: Message<K, D, P> = { kind: Kind.Ihave, topic: state.name, ids }
    for (const id of sample(candidates, this.config.gossipDegree, this.prng)) {
      this.counters.ihaveIdsSent += ids.length
      this.sink.send(id, message)
    }
  }

  private broadcast(message: Message<K, D, P>): void {
    for (const id of this.peers.keys()) this.sink.send(id, message)
  }
}

/** A GossipSub-like engine for one node. */
export const make = <P, K, D>(options: Options<P, K, D>, config: Config): Engine<P, K, D> =>
  new GossipSubEngine(options, config)
