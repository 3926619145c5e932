/**
 * Weft's dissemination engine: an eager-push spanning tree per topic (Plumtree-style) with lazy, batched
 * announcements, made to keep amplification near 1 under loss, churn and hostile peers.
 *
 * - Tree: each node chooses one parent (GRAFT); children are the peers that chose it; DATA is pushed
 *   to parent and children. Only the child side ever cuts an edge (on a duplicate over a tree edge,
 *   which means a cycle), so concurrent cuts leave trees, not orphans; a root re-attaches on its next
 *   fetch, a lost parent is replaced at once, and the parent is restated each second (lost GRAFTs).
 * - Lazy IHAVE: each tick, a topic's new ids go in ONE IHAVE to `lazyFanout` random lazy peers.
 * - Repair: an id announced but still missing `missingTimeoutMs` after the first IHAVE is fetched (IWANT)
 *   from an announcer, the next one every `retryTimeoutMs`; the fetch becomes a GRAFT (re-parenting) when
 *   most recent messages had to be fetched, or when tree copies keep arriving well after announcements.
 *   A fetched message is pushed down to children only (a copy pushed up would look like a cycle).
 * - Suppression: IDONTWANT for large messages (and optionally for fetched ids) to tree peers.
 * - Bounds and scoring: bounded time-windowed seen-cache, per-peer token bucket, peer scores (rejected
 *   messages, unsolicited duplicates, rate-limit hits, traffic while graylisted) that prune, graylist and
 *   disconnect, with bad scores retained across reconnects in a bounded table. Every drop is counted.
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

/** Seen-cache flag: the message arrived because we asked for it. */
const FETCHED = 1
/** Weight of the newest message in a topic's fetched-share average. */
const RATIO_WEIGHT = 1 / 8

interface PeerState<P, K> {
  readonly id: P
  readonly topics: Set<string>
  readonly bucket: Bucket
  score: number
  served: number
  disconnecting: boolean
  dontwant: Set<K> | undefined
  dontwantRing: Array<K> | undefined
  dontwantHead: number
}

interface TopicState<P, K> {
  readonly name: string
  /** Tree edges: the parent we chose plus the children that chose us (kept as one set for pushing). */
  readonly eager: Set<P>
  readonly children: Set<P>
  parent: P | undefined
  readonly lazy: Set<P>
  pending: Array<K>
  fetchRatio: number
  lateRatio: number
}

interface Missing<P> {
  readonly topic: string
  readonly firstAt: number
  readonly announcers: Array<P>
  deadline: number
  tries: number
}

interface Request<K> {
  readonly ids: Array<K>
  readonly topic: string
  graftTopic: string | undefined
}

/** The Weft engine for one node. */
export class WeftEngine<P, K, D> implements Engine<P, K, D> {
  readonly strategy = "weft"
  readonly counters: Counters = makeCounters()
  private readonly peers = new Map<P, PeerState<P, K>>()
  private readonly topics = new Map<string, TopicState<P, K>>()
  private readonly missing = new Map<K, Missing<P>>()
  private readonly retained = new Map<P, number>()
  private readonly seen: SeenCache<K, Data<K, D>>
  private readonly sink: Sink<P, K, D>
  private readonly prng: Prng
  private readonly validate: ((topic: string, message: Data<K, D>, from: P | undefined) => Validation) | undefined
  private nextSlowTick = 0

  constructor(options: Options<P, K, D>, readonly config: Config) {
    this.sink = options.sink
    this.prng = options.prng
    this.validate = options.validate
    this.seen = new SeenCache(config.seenEntriesMax, config.seenWindowMs, config.payloadWindowMs)
  }

  subscribe(_now: number, topic: string): void {
    if (this.topics.has(topic)) return
    const state: TopicState<P, K> = {
      name: topic,
      eager: new Set(),
      children: new Set(),
      parent: undefined,
      lazy: new Set(),
      pending: [],
      fetchRatio: 0,
      lateRatio: 0
    }
    for (const peer of this.peers.values()) if (peer.topics.has(topic)) state.lazy.add(peer.id)
    this.topics.set(topic, state)
    this.graftAny(state)
    this.announceSubscription([topic], true)
  }

  unsubscribe(_now: number, topic: string): void {
    if (!this.topics.delete(topic)) return
    this.announceSubscription([topic], false)
  }

  publish(now: number, topic: string, data: D, id: K, bytes: number): PublishResult {
    if (bytes > this.config.messageBytesMax) {
      this.counters.tooLarge++
      return "TooLarge"
    }
    if (this.seen.has(id)) return "Duplicate"
    const message: Data<K, D> = { kind: Kind.Data, topic, id, data, bytes }
    if (this.validate !== undefined && this.validate(topic, message, undefined) !== Validation.Accept) return "Rejected"
    this.seen.add(now, id, message, bytes, 0)
    const state = this.topics.get(topic)
    if (state === undefined) return this.fanout(message)
    this.pushEager(state.eager, undefined, message, undefined)
    this.queueAnnouncement(state, id)
    return state.eager.size + state.lazy.size === 0 ? "NoPeers" : "Published"
  }

  onMessage(now: number, from: P, message: Message<K, D>): void {
    this.counters.received++
    const peer = this.peers.get(from)
    if (peer === undefined) {
      this.counters.unknownPeer++
      return
    }
    if (peer.score < this.config.graylistThreshold) {
      // Ignored, and still scored: a graylisted peer that keeps sending is disconnected.
      this.counters.graylisted++
      return this.penalize(peer, this.config.rateLimitPenalty)
    }
    if (!take(peer.bucket, now, wireBytes(message), this.config)) {
      this.counters.rateLimited++
      this.penalize(peer, this.config.rateLimitPenalty)
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
        return this.onGraft(peer, message.topic, message.ids)
      case Kind.Prune:
        return this.onPrune(peer, message.topic)
      case Kind.Idontwant:
        return this.onIdontwant(peer, message.ids)
      case Kind.Subscribe:
        return this.onSubscribe(peer, message.topics, message.subscribe)
    }
  }

  onTick(now: number): void {
    if (now >= this.nextSlowTick) {
      this.nextSlowTick = now + 1000
      this.slowTick(now)
    }
    for (const state of this.topics.values()) this.flushAnnouncements(state)
    if (this.missing.size > 0) this.repair(now)
  }

  peerUp(_now: number, id: P): void {
    if (this.peers.has(id)) return
    const score = this.retained.get(id) ?? 0
    this.retained.delete(id)
    const peer: PeerState<P, K> = {
      id,
      topics: new Set(),
      bucket: { tokens: this.config.peerBurstBytes, at: _now },
      score,
      served: 0,
      disconnecting: false,
      dontwant: undefined,
      dontwantRing: undefined,
      dontwantHead: 0
    }
    this.peers.set(id, peer)
    if (score < this.config.disconnectThreshold) return this.requestDisconnect(peer)
    if (this.topics.size > 0) this.sink.send(id, { kind: Kind.Subscribe, topics: [...this.topics.keys()], subscribe: true })
  }

  peerDown(_now: number, id: P): void {
    const peer = this.peers.get(id)
    if (peer === undefined) return
    this.peers.delete(id)
    for (const name of peer.topics) {
      const state = this.topics.get(name)
      if (state === undefined) continue
      state.eager.delete(id)
      state.lazy.delete(id)
      state.children.delete(id)
      if (state.parent === id) {
        state.parent = undefined
        this.graftAny(state)
      }
    }
    if (peer.score < 0) this.retainScore(id, peer.score)
  }

  sizes(): Sizes {
    let pendingIhave = 0
    for (const state of this.topics.values()) pendingIhave = Math.max(pendingIhave, state.pending.length)
    let dontwantMax = 0
    let topicsPerPeerMax = 0
    for (const peer of this.peers.values()) {
      dontwantMax = Math.max(dontwantMax, peer.dontwant?.size ?? 0)
      topicsPerPeerMax = Math.max(topicsPerPeerMax, peer.topics.size)
    }
    return {
      peers: this.peers.size,
      seen: this.seen.size,
      seenPayloadBytes: this.seen.payloadBytes,
      missing: this.missing.size,
      pendingIhave,
      dontwantMax,
      retainedScores: this.retained.size,
      topicsPerPeerMax
    }
  }

  /**
   * Bytes: a fixed base; per peer its state object and its topic and IDONTWANT entries; per topic its
   * eager/lazy set entries and pending ids; the seen-cache's ring slots, index entries and held payload
   * bytes; missing entries with their announcer arrays; retained scores. Entry sizes in `gossipEngine`.
   */
  memoryBytes(): number {
    let bytes = engineBaseBytes + this.peers.size * peerStateBytes
    for (const peer of this.peers.values()) {
      bytes += peer.topics.size * mapEntryBytes
      if (peer.dontwantRing !== undefined) bytes += peer.dontwantRing.length * (mapEntryBytes + 8)
    }
    for (const state of this.topics.values()) {
      bytes += 128 + (state.eager.size + state.lazy.size) * mapEntryBytes + state.pending.length * 8
    }
    bytes += this.seen.capacity * (seenEntryBytes - mapEntryBytes) + this.seen.size * mapEntryBytes
    bytes += this.seen.payloadBytes
    bytes += this.missing.size * (mapEntryBytes + 64 + this.config.announcersMax * 8)
    bytes += this.retained.size * mapEntryBytes
    return bytes
  }

  private onData(now: number, peer: PeerState<P, K>, message: Data<K, D>): void {
    this.counters.receivedData++
    if (message.bytes > this.config.messageBytesMax) {
      this.counters.tooLarge++
      return this.penalize(peer, this.config.invalidPenalty)
    }
    const state = this.topics.get(message.topic)
    if (state === undefined) {
      this.counters.notSubscribed++
      return
    }
    const flags = this.seen.flagsOf(message.id)
    if (flags >= 0) return this.onDuplicate(peer, state, flags)
    const verdict = this.validate === undefined ? Validation.Accept : this.validate(message.topic, message, peer.id)
    if (verdict === Validation.Reject) {
      this.counters.invalid++
      // Not remembered: a flood of distinct invalid ids must not evict honest ids from the seen-cache.
      return this.penalize(peer, this.config.invalidPenalty)
    }
    const wanted = this.missing.get(message.id)
    const fetched = wanted !== undefined && wanted.tries > 0
    if (wanted !== undefined) this.missing.delete(message.id)
    if (verdict === Validation.Ignore) {
      this.counters.ignored++
      return this.seen.add(now, message.id, undefined, 0, 0)
    }
    this.seen.add(now, message.id, message, message.bytes, fetched ? FETCHED : 0)
    state.fetchRatio += RATIO_WEIGHT * ((fetched ? 1 : 0) - state.fetchRatio)
    if (!fetched && wanted !== undefined) this.considerShortcut(now, state, wanted)
    this.counters.delivered++
    this.sink.deliver(message, peer.id)
    // A fetched message goes down only: our parent most likely has it (its copy to us was lost or
    // slow), and a copy pushed up would look to it like a cycle.
    if (fetched) this.pushEager(state.children, state.parent, message, peer.id)
    else this.pushEager(state.eager, undefined, message, peer.id)
    this.queueAnnouncement(state, message.id)
    if (message.bytes >= this.config.idontwantBytesMin) this.sendIdontwant(state, [message.id], peer.id)
  }

  private onDuplicate(peer: PeerState<P, K>, state: TopicState<P, K>, flags: number): void {
    this.counters.duplicates++
    if (state.eager.has(peer.id)) {
      // A late copy of a message we fetched is expected from the edge that lost it: keep the edge.
      if ((flags & FETCHED) !== 0) {
        this.counters.duplicatesLate++
        return
      }
      // A copy over a tree edge after a first copy over another means the tree has a cycle. Every node on
      // it chose its parent along it, so dropping our own parent cuts it; only the child side of an edge
      // ever cuts, so concurrent cuts leave trees (each with a root), never lost edges, and a root
      // re-attaches on its next fetch.
      this.counters.duplicatesCycle++
      if (state.parent !== undefined && this.prng.nextFloat() < this.config.pruneProbability) this.dropParent(state)
      return
    }
    // The peer pushes though we are not its tree neighbour (stale state, or hostile): tell it, score it.
    this.counters.duplicatesUnsolicited++
    this.penalize(peer, this.config.duplicatePenalty)
    this.counters.prunesSent++
    this.sink.send(peer.id, { kind: Kind.Prune, topic: state.name })
  }

  /**
   * The tree copy came well after a lazy peer announced it: that peer is nearer the sources than our
   * parent. When that keeps happening, move up to it (with some probability per message, so a whole
   * subtree does not move at once). This is what keeps the tree shallow, and its latency near a flood's.
   */
  private considerShortcut(now: number, state: TopicState<P, K>, wanted: Missing<P>): void {
    const late = now - wanted.firstAt > this.config.shortcutLagMs
    state.lateRatio += RATIO_WEIGHT * ((late ? 1 : 0) - state.lateRatio)
    if (!late || state.lateRatio < this.config.graftFetchRatio) return
    if (this.prng.nextFloat() >= this.config.graftProbability) return
    const announcer = wanted.announcers[0]!
    if (announcer === state.parent || !this.peers.has(announcer)) return
    state.lateRatio = 0
    this.adoptParent(state, announcer, [])
  }

  /** Makes `peer` our parent (GRAFT), dropping the previous one. */
  private adoptParent(state: TopicState<P, K>, peer: P, ids: ReadonlyArray<K>): void {
    if (state.parent !== undefined && state.parent !== peer) this.dropParent(state)
    state.parent = peer
    state.lazy.delete(peer)
    state.eager.add(peer)
    state.fetchRatio = 0
    this.counters.graftsSent++
    this.sink.send(peer, { kind: Kind.Graft, topic: state.name, ids })
  }

  private dropParent(state: TopicState<P, K>): void {
    const parent = state.parent
    if (parent === undefined) return
    state.parent = undefined
    if (!state.children.has(parent)) {
      state.eager.delete(parent)
      state.lazy.add(parent)
    }
    this.counters.prunesSent++
    this.sink.send(parent, { kind: Kind.Prune, topic: state.name })
  }

  private pushEager(targets: Set<P>, skip: P | undefined, message: Data<K, D>, from: P | undefined): void {
    for (const id of targets) {
      if (id === from || id === skip) continue
      const peer = this.peers.get(id)!
      if (peer.dontwant !== undefined && peer.dontwant.has(message.id)) {
        this.counters.suppressed++
        continue
      }
      this.counters.forwarded++
      this.sink.send(id, message)
    }
  }

  private queueAnnouncement(state: TopicState<P, K>, id: K): void {
    if (state.pending.length >= this.config.ihaveIdsMax) {
      this.counters.ihaveIdsDropped++
      return
    }
    state.pending.push(id)
  }

  private sendIdontwant(state: TopicState<P, K>, ids: Array<K>, except: P | undefined): void {
    let message: Message<K, D> | undefined
    for (const peer of state.eager) {
      if (peer === except) continue
      message ??= { kind: Kind.Idontwant, ids }
      this.counters.idontwantIdsSent += ids.length
      this.sink.send(peer, message)
    }
  }

  private flushAnnouncements(state: TopicState<P, K>): void {
    if (state.pending.length === 0) return
    const candidates: Array<P> = []
    for (const id of state.lazy) if (this.peers.get(id)!.score >= this.config.pruneThreshold) candidates.push(id)
    const message: Message<K, D> = { kind: Kind.Ihave, topic: state.name, ids: state.pending }
    state.pending = []
    for (const id of sample(candidates, this.config.lazyFanout, this.prng)) {
      this.counters.ihaveIdsSent += message.ids.length
      this.sink.send(id, message)
    }
  }

  private onIhave(now: number, peer: PeerState<P, K>, topic: string, ids: ReadonlyArray<K>): void {
    const state = this.topics.get(topic)
    if (state === undefined) {
      this.counters.notSubscribed++
      return
    }
    if (peer.score < this.config.pruneThreshold) return
    const count = Math.min(ids.length, this.config.ihaveIdsMax)
    this.counters.ihaveIdsDropped += ids.length - count
    const fromEager = state.eager.has(peer.id)
    for (let i = 0; i < count; i++) {
      const id = ids[i]!
      if (fromEager) this.rememberDontwant(peer, id)
      if (this.seen.has(id)) continue
      const entry = this.missing.get(id)
      if (entry === undefined) {
        if (this.missing.size >= this.config.missingEntriesMax) {
          this.counters.missingDropped++
          continue
        }
        this.missing.set(id, { topic, firstAt: now, announcers: [peer.id], deadline: now + this.config.missingTimeoutMs, tries: 0 })
      } else if (entry.announcers.length < this.config.announcersMax && !entry.announcers.includes(peer.id)) {
        entry.announcers.push(peer.id)
      }
    }
  }

  private repair(now: number): void {
    let requests: Map<P, Request<K>> | undefined
    let graftTopics: Set<string> | undefined
    for (const [id, entry] of this.missing) {
      if (entry.deadline > now) continue
      const announcer = this.nextAnnouncer(entry)
      if (announcer === undefined || entry.tries >= this.config.missingTriesMax) {
        this.missing.delete(id)
        this.counters.missingGaveUp++
        continue
      }
      requests ??= new Map()
      graftTopics ??= new Set()
      let request = requests.get(announcer)
      if (request === undefined) {
        request = { ids: [], topic: entry.topic, graftTopic: undefined }
        requests.set(announcer, request)
      }
      if (request.ids.length >= this.config.iwantIdsMax) continue
      entry.tries++
      entry.deadline = now + this.config.retryTimeoutMs
      request.ids.push(id)
      const state = this.topics.get(entry.topic)
      // Every node of a cut-off fragment sees the same fetches at once: each grafts only with some
      // probability, so the first graft heals the fragment instead of all of them closing cycles.
      if (state === undefined || request.graftTopic !== undefined || graftTopics!.has(entry.topic)) continue
      // One graft per topic per tick: several would only replace each other as our parent.
      if (state.parent === undefined ||
        (state.fetchRatio > this.config.graftFetchRatio && this.prng.nextFloat() < this.config.graftProbability)) {
        request.graftTopic = entry.topic
        graftTopics!.add(entry.topic)
      }
    }
    if (requests === undefined) return
    for (const [peer, request] of requests) this.sendRequest(peer, request, this.topics.get(request.topic))
  }

  private nextAnnouncer(entry: Missing<P>): P | undefined {
    const count = entry.announcers.length
    for (let i = 0; i < count; i++) {
      const id = entry.announcers[(entry.tries + i) % count]!
      if (this.peers.has(id)) return id
    }
    return undefined
  }

  private sendRequest(peer: P, request: Request<K>, topic: TopicState<P, K> | undefined): void {
    this.counters.iwantIdsSent += request.ids.length
    if (this.config.idontwantOnRequest && topic !== undefined) this.sendIdontwant(topic, request.ids, peer)
    if (request.graftTopic === undefined) return this.sink.send(peer, { kind: Kind.Iwant, ids: request.ids })
    this.adoptParent(this.topics.get(request.graftTopic)!, peer, request.ids)
  }

  private graftAny(state: TopicState<P, K>): void {
    const candidates: Array<P> = []
    for (const id of state.lazy) if (this.peers.get(id)!.score >= this.config.pruneThreshold) candidates.push(id)
    const chosen = sample(candidates, 1, this.prng)[0]
    if (chosen !== undefined) this.adoptParent(state, chosen, [])
  }

  private serve(peer: PeerState<P, K>, ids: ReadonlyArray<K>): void {
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

  private onGraft(peer: PeerState<P, K>, topic: string, ids: ReadonlyArray<K>): void {
    const state = this.topics.get(topic)
    if (state !== undefined && peer.topics.has(topic) && peer.score >= this.config.pruneThreshold) {
      state.children.add(peer.id)
      state.lazy.delete(peer.id)
      state.eager.add(peer.id)
    }
    this.serve(peer, ids)
  }

  private onPrune(peer: PeerState<P, K>, topic: string): void {
    const state = this.topics.get(topic)
    if (state === undefined || !state.children.delete(peer.id) || state.parent === peer.id) return
    state.eager.delete(peer.id)
    state.lazy.add(peer.id)
  }

  private forget(state: TopicState<P, K>, peer: P): void {
    state.eager.delete(peer)
    state.lazy.delete(peer)
    state.children.delete(peer)
    if (state.parent === peer) state.parent = undefined
  }

  private onIdontwant(peer: PeerState<P, K>, ids: ReadonlyArray<K>): void {
    const count = Math.min(ids.length, this.config.iwantIdsMax)
    for (let i = 0; i < count; i++) this.rememberDontwant(peer, ids[i]!)
  }

  private rememberDontwant(peer: PeerState<P, K>, id: K): void {
    const max = this.config.dontwantIdsPerPeerMax
    if (max <= 0) return
    if (peer.dontwant === undefined || peer.dontwantRing === undefined) {
      peer.dontwant = new Set()
      peer.dontwantRing = []
    }
    if (peer.dontwant.has(id)) return
    if (peer.dontwantRing.length < max) {
      peer.dontwantRing.push(id)
    } else {
      peer.dontwant.delete(peer.dontwantRing[peer.dontwantHead]!)
      peer.dontwantRing[peer.dontwantHead] = id
      peer.dontwantHead = (peer.dontwantHead + 1) % max
    }
    peer.dontwant.add(id)
  }

  private onSubscribe(peer: PeerState<P, K>, topics: ReadonlyArray<string>, subscribe: boolean): void {
    for (const topic of topics) {
      const state = this.topics.get(topic)
      if (!subscribe) {
        peer.topics.delete(topic)
        if (state !== undefined) this.forget(state, peer.id)
        continue
      }
      if (peer.topics.has(topic)) continue
      if (peer.topics.size >= this.config.topicsPerPeerMax) {
        this.counters.topicsDropped++
        continue
      }
      peer.topics.add(topic)
      if (state === undefined) continue
      // A new peer starts lazy unless we have no tree edge yet: starting all-eager floods, and with
      // many messages in flight the floods' prunes cut the tree into fragments.
      state.lazy.add(peer.id)
      if (state.parent === undefined && peer.score >= this.config.pruneThreshold) this.adoptParent(state, peer.id, [])
    }
  }

  private fanout(message: Data<K, D>): PublishResult {
    const candidates: Array<P> = []
    for (const peer of this.peers.values()) if (peer.topics.has(message.topic)) candidates.push(peer.id)
    const chosen = sample(candidates, this.config.lazyFanout, this.prng)
    for (const id of chosen) this.sink.send(id, message)
    return chosen.length === 0 ? "NoPeers" : "Published"
  }

  private announceSubscription(topics: Array<string>, subscribe: boolean): void {
    const message: Message<K, D> = { kind: Kind.Subscribe, topics, subscribe }
    for (const id of this.peers.keys()) this.sink.send(id, message)
  }

  private penalize(peer: PeerState<P, K>, amount: number): void {
    peer.score -= amount
    if (peer.score < this.config.pruneThreshold) {
      for (const state of this.topics.values()) {
        if (!state.eager.has(peer.id)) continue
        this.forget(state, peer.id)
        state.lazy.add(peer.id)
        if (state.parent === undefined) this.graftAny(state)
      }
    }
    if (peer.score < this.config.disconnectThreshold) this.requestDisconnect(peer)
  }

  private requestDisconnect(peer: PeerState<P, K>): void {
    if (peer.disconnecting) return
    peer.disconnecting = true
    this.counters.disconnects++
    this.sink.disconnect(peer.id)
  }

  private retainScore(id: P, score: number): void {
    this.retained.delete(id)
    if (this.retained.size >= this.config.retainedScoresMax) {
      const oldest = this.retained.keys().next()
      if (!oldest.done) this.retained.delete(oldest.value)
      this.counters.retainedScoresEvicted++
    }
    this.retained.set(id, score)
  }

  private slowTick(now: number): void {
    const decay = this.config.scoreDecay
    for (const peer of this.peers.values()) {
      peer.served = 0
      if (peer.score === 0) continue
      peer.score *= decay
      if (peer.score > -0.01) peer.score = 0
    }
    for (const [id, score] of this.retained) {
      const decayed = score * decay
      if (decayed > -0.01) this.retained.delete(id)
      else this.retained.set(id, decayed)
    }
    // GRAFT and PRUNE may be lost or reordered; restating our parent once a second bounds how long a
    // lost GRAFT leaves us off the tree (one small message per node per second).
    for (const state of this.topics.values()) {
      if (state.parent !== undefined) this.sink.send(state.parent, { kind: Kind.Graft, topic: state.name, ids: [] })
    }
    this.seen.expire(now)
  }
}

/** A Weft engine for one node. */
export const make = <P, K, D>(options: Options<P, K, D>, config: Config): Engine<P, K, D> =>
  new WeftEngine(options, config)
