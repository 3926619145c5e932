/**
 * Weft's dissemination engine: one spanning tree per topic, kept loop-free by a distance-vector
 * protocol towards an elected root (`gossipTree.ts`), with lazy, batched announcements for repair; made
 * to keep amplification near 1 under loss, churn and hostile peers.
 *
 * - Tree: every node pushes a topic's messages to its parent and its children, so each node gets one
 *   copy. Parents are chosen from neighbours' advertisements (root, wave number, distance), never by
 *   reacting to duplicates, so the tree neither fragments nor cycles; it follows the fastest paths from
 *   the root and heals within one wave when a node leaves.
 * - Lazy IHAVE: each tick, a topic's new ids go in ONE IHAVE to `lazyFanout` random non-tree peers.
 * - Repair: an id announced but still missing `missingTimeoutMs` after the first IHAVE is fetched (IWANT)
 *   from an announcer, the next one every `retryTimeoutMs`. A fetched message is pushed down to children
 *   only: our parent most likely has it (its copy to us was lost), and they most likely do not.
 * - Suppression: IDONTWANT for large messages, and for fetched ids to the parent (whose own repaired
 *   copy would otherwise arrive as a duplicate).
 * - Bounds and scoring: bounded time-windowed seen-cache, per-peer token bucket, peer scores (rejected
 *   messages, unsolicited duplicates, rate-limit hits, traffic while graylisted) that prune, graylist and
 *   disconnect, with bad scores retained across reconnects in a bounded table. Every drop is counted.
 *
 * A hostile peer can advertise a false short route and so attract children; it gains nothing the repair
 * path does not undo (dropped pushes are fetched from other announcers) and loses its score on invalid data.
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
import { type Data, type Ihave, Kind, type Message, type Tree as TreeMessage, wireBytes } from "./gossipMessage.js"
import type { Prng } from "./prng.js"
import { SeenCache } from "./gossipSeen.js"
import { Tree } from "./gossipTree.js"

/** Seen-cache flag: the message arrived because we asked for it. */
const FETCHED = 1

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
  /** Neighbours subscribed to the topic. */
  readonly peers: Set<P>
  readonly tree: Tree<P>
  /** New ids to announce to tree neighbours (each tick) and to lazy peers (each lazy interval). */
  pendingTree: Array<K>
  pendingLazy: Array<K>
  nextLazyAt: number
}

interface Missing<P> {
  readonly topic: string
  readonly announcers: Array<P>
  deadline: number
  tries: number
}

interface Request<K> {
  readonly ids: Array<K>
  readonly topic: string
}

/** The Weft engine for one node. */
export class WeftEngine<P extends string | number, K, D> implements Engine<P, K, D> {
  readonly strategy = "weft"
  readonly counters: Counters = makeCounters()
  private readonly peers = new Map<P, PeerState<P, K>>()
  private readonly topics = new Map<string, TopicState<P, K>>()
  private readonly missing = new Map<K, Missing<P>>()
  private readonly retained = new Map<P, number>()
  private readonly seen: SeenCache<K, Data<K, D>>
  private readonly self: P
  private readonly sink: Sink<P, K, D>
  private readonly prng: Prng
  private readonly validate: ((topic: string, message: Data<K, D>, from: P | undefined) => Validation) | undefined
  private nextSlowTick = 0

  constructor(options: Options<P, K, D>, readonly config: Config) {
    this.self = options.self
    this.sink = options.sink
    this.prng = options.prng
    this.validate = options.validate
    this.seen = new SeenCache(config.seenEntriesMax, config.seenWindowMs, config.payloadWindowMs)
  }

  subscribe(now: number, topic: string): void {
    if (this.topics.has(topic)) return
    const tree = new Tree(this.self, now, {
      advertIntervalMs: this.config.treeAdvertIntervalMs,
      rootTimeoutMs: this.config.treeRootTimeoutMs,
      depthMax: this.config.treeDepthMax,
      switchLagMs: this.config.treeSwitchLagMs
    })
    const state: TopicState<P, K> = { name: topic, peers: new Set(), tree, pendingTree: [], pendingLazy: [], nextLazyAt: now }
    for (const peer of this.peers.values()) if (peer.topics.has(topic)) state.peers.add(peer.id)
    this.topics.set(topic, state)
    this.announceSubscription([topic], true)
    this.advertise(now, state)
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
    this.pushTree(state, false, message, undefined)
    this.queueAnnouncement(state, id)
    return state.peers.size === 0 ? "NoPeers" : "Published"
  }

  onMessage(now: number, from: P, message: Message<K, D, P>): void {
    this.counters.received++
    const peer = this.peers.get(from)
    if (peer === undefined) {
      this.counters.unknownPeer++
      return
    }
    if (peer.score < this.config.graylistThreshold) {
      // Ignored, and still scored: a graylisted peer that keeps sending is disconnected.
      this.counters.graylisted++
      return this.penalize(now, peer, this.config.rateLimitPenalty)
    }
    if (!take(peer.bucket, now, wireBytes(message), this.config)) {
      this.counters.rateLimited++
      this.penalize(now, peer, this.config.rateLimitPenalty)
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
        // GossipSub's; Weft's tree needs none. A GRAFT still carries a fetch.
        return this.serve(peer, message.ids)
      case Kind.Prune:
        return
      case Kind.Tree:
        return this.onTree(now, peer, message)
      case Kind.Idontwant:
        return this.onIdontwant(peer, message.ids)
      case Kind.Subscribe:
        return this.onSubscribe(now, peer, message.topics, message.subscribe)
    }
  }

  onTick(now: number): void {
    if (now >= this.nextSlowTick) {
      this.nextSlowTick = now + 1000
      this.slowTick(now)
    }
    for (const state of this.topics.values()) {
      if (state.tree.onTick(now)) this.advertise(now, state)
    }
    for (const state of this.topics.values()) this.flushAnnouncements(now, state)
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

  peerDown(now: number, id: P): void {
    const peer = this.peers.get(id)
    if (peer === undefined) return
    this.peers.delete(id)
    for (const name of peer.topics) {
      const state = this.topics.get(name)
      if (state === undefined) continue
      state.peers.delete(id)
      if (state.tree.onPeerDown(now, id)) this.advertise(now, state)
    }
    if (peer.score < 0) this.retainScore(id, peer.score)
  }

  sizes(): Sizes {
    let pendingIhave = 0
    for (const state of this.topics.values()) pendingIhave = Math.max(pendingIhave, state.pendingTree.length, state.pendingLazy.length)
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
   * peer and child set entries, the neighbours' adverts and pending ids; the seen-cache's ring slots, index entries and held payload
   * bytes; missing entries with their announcer arrays; retained scores. Entry sizes in `gossipEngine`.
   */
  memoryBytes(): number {
    let bytes = engineBaseBytes + this.peers.size * peerStateBytes
    for (const peer of this.peers.values()) {
      bytes += peer.topics.size * mapEntryBytes
      if (peer.dontwantRing !== undefined) bytes += peer.dontwantRing.length * (mapEntryBytes + 8)
    }
    for (const state of this.topics.values()) {
      bytes += 256 + (state.peers.size + state.tree.children.size) * mapEntryBytes + (state.pendingTree.length + state.pendingLazy.length) * 8
      bytes += state.tree.heardSize * (mapEntryBytes + 48)
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
      return this.penalize(now, peer, this.config.invalidPenalty)
    }
    const state = this.topics.get(message.topic)
    if (state === undefined) {
      this.counters.notSubscribed++
      return
    }
    const flags = this.seen.flagsOf(message.id)
    if (flags >= 0) return this.onDuplicate(now, peer, state, flags)
    const verdict = this.validate === undefined ? Validation.Accept : this.validate(message.topic, message, peer.id)
    if (verdict === Validation.Reject) {
      this.counters.invalid++
      // Not remembered: a flood of distinct invalid ids must not evict honest ids from the seen-cache.
      return this.penalize(now, peer, this.config.invalidPenalty)
    }
    const wanted = this.missing.get(message.id)
    const fetched = wanted !== undefined && wanted.tries > 0
    if (wanted !== undefined) this.missing.delete(message.id)
    if (verdict === Validation.Ignore) {
      this.counters.ignored++
      return this.seen.add(now, message.id, undefined, 0, 0)
    }
    this.seen.add(now, message.id, message, message.bytes, fetched ? FETCHED : 0)
    if (fetched) state.tree.noteParent(false)
    else if (peer.id === state.tree.parent) state.tree.noteParent(true)
    this.counters.delivered++
    this.sink.deliver(message, peer.id)
    this.pushTree(state, fetched, message, peer.id)
    this.queueAnnouncement(state, message.id)
    if (message.bytes >= this.config.idontwantBytesMin) this.sendIdontwant(state, [message.id], peer.id)
  }

  private onDuplicate(now: number, peer: PeerState<P, K>, state: TopicState<P, K>, flags: number): void {
    this.counters.duplicates++
    if (state.tree.isEager(peer.id)) {
      // Expected now and then: the tree copy of a message we fetched, or two copies while a parent changes.
      if ((flags & FETCHED) !== 0) this.counters.duplicatesLate++
      else this.counters.duplicatesTree++
      return
    }
    // The peer pushes though we are not its tree neighbour: it missed our advertisement (lost, or in
    // flight while we changed parent), so restate it; a hostile pusher gets scored down.
    this.counters.duplicatesUnsolicited++
    this.penalize(now, peer, this.config.duplicatePenalty)
    if (state.peers.has(peer.id)) this.sendAdvert(state, peer.id)
  }

  private onTree(now: number, peer: PeerState<P, K>, message: TreeMessage<P>): void {
    const state = this.topics.get(message.topic)
    if (state === undefined || !state.peers.has(peer.id)) {
      this.counters.notSubscribed++
      return
    }
    // A peer scored below the prune threshold gets no tree edge: it would be a child we push to.
    const advert = peer.score < this.config.pruneThreshold ? { ...message, parentIsMe: false, dist: this.config.treeDepthMax } : message
    if (state.tree.onAdvert(now, peer.id, advert)) this.advertise(now, state)
  }

  /** Sends our tree advertisement for `state` to every subscribed neighbour. */
  private advertise(now: number, state: TopicState<P, K>): void {
    state.tree.lastAdvertAt = now
    for (const id of state.peers) this.sendAdvert(state, id)
  }

  private sendAdvert(state: TopicState<P, K>, id: P): void {
    const advert = state.tree.advertFor(id)
    this.counters.treeAdvertsSent++
    this.sink.send(id, { kind: Kind.Tree, topic: state.name, ...advert })
  }

  /** Pushes to the tree neighbours (children only for a fetched message), except `from`. */
  private pushTree(state: TopicState<P, K>, childrenOnly: boolean, message: Data<K, D>, from: P | undefined): void {
    const parent = state.tree.parent
    if (!childrenOnly && parent !== undefined && parent !== from) this.pushTo(parent, message)
    for (const id of state.tree.children) if (id !== from && id !== parent) this.pushTo(id, message)
  }

  private pushTo(id: P, message: Data<K, D>): void {
    const peer = this.peers.get(id)
    if (peer === undefined) return
    if (peer.dontwant !== undefined && peer.dontwant.has(message.id)) {
      this.counters.suppressed++
      return
    }
    this.counters.forwarded++
    this.sink.send(id, message)
  }

  private queueAnnouncement(state: TopicState<P, K>, id: K): void {
    if (state.pendingLazy.length >= this.config.ihaveIdsMax) {
      this.counters.ihaveIdsDropped++
      return
    }
    state.pendingLazy.push(id)
    state.pendingTree.push(id)
  }

  private sendIdontwant(state: TopicState<P, K>, ids: Array<K>, except: P | undefined): void {
    const message: Message<K, D, P> = { kind: Kind.Idontwant, ids }
    const parent = state.tree.parent
    if (parent !== undefined && parent !== except) this.sendIdontwantTo(parent, message, ids.length)
    for (const peer of state.tree.children) if (peer !== except && peer !== parent) this.sendIdontwantTo(peer, message, ids.length)
  }

  private sendIdontwantTo(peer: P, message: Message<K, D, P>, count: number): void {
    this.counters.idontwantIdsSent += count
    this.sink.send(peer, message)
  }

  /**
   * Tree neighbours hear of every new id on the next tick: a push to them may have been lost, and a node
   * whose every neighbour is a tree neighbour (the root, often) has no one else to hear of a loss from.
   * Lazy peers hear less often, in bigger batches: they are the second line of repair.
   */
  private flushAnnouncements(now: number, state: TopicState<P, K>): void {
    // With nobody to tell (not connected yet, or everyone just left), keep the ids (bounded) for later:
    // a message published in that moment still goes out once a neighbour subscribes.
    if (state.peers.size === 0) return
    if (state.pendingTree.length > 0) {
      const message: Ihave<K> = { kind: Kind.Ihave, topic: state.name, ids: state.pendingTree }
      state.pendingTree = []
      const parent = state.tree.parent
      if (parent !== undefined) this.sendIhave(parent, message)
      for (const id of state.tree.children) if (id !== parent) this.sendIhave(id, message)
    }
    if (state.pendingLazy.length === 0 || now < state.nextLazyAt) return
    state.nextLazyAt = now + this.config.lazyAnnounceIntervalMs
    const candidates: Array<P> = []
    for (const id of state.peers) {
      if (!state.tree.isEager(id) && this.peers.get(id)!.score >= this.config.pruneThreshold) candidates.push(id)
    }
    const message: Ihave<K> = { kind: Kind.Ihave, topic: state.name, ids: state.pendingLazy }
    state.pendingLazy = []
    for (const id of sample(candidates, this.config.lazyFanout, this.prng)) this.sendIhave(id, message)
  }

  private sendIhave(id: P, message: Ihave<K>): void {
    this.counters.ihaveIdsSent += message.ids.length
    this.sink.send(id, message)
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
    const fromEager = state.tree.isEager(peer.id)
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
        // A tree neighbour announces after it pushed: the push was lost, fetch at once. A lazy peer's
        // announcement may beat the tree copy: give that time to arrive.
        const deadline = fromEager ? now : now + this.config.missingTimeoutMs
        this.missing.set(id, { topic, announcers: [peer.id], deadline, tries: 0 })
      } else if (entry.announcers.length < this.config.announcersMax && !entry.announcers.includes(peer.id)) {
        if (fromEager && entry.tries === 0) {
          entry.announcers.unshift(peer.id)
          entry.deadline = now
        } else {
          entry.announcers.push(peer.id)
        }
      }
    }
  }

  private repair(now: number): void {
    let requests: Map<P, Request<K>> | undefined
    for (const [id, entry] of this.missing) {
      if (entry.deadline > now) continue
      const announcer = this.nextAnnouncer(entry)
      if (announcer === undefined || entry.tries >= this.config.missingTriesMax) {
        this.missing.delete(id)
        this.counters.missingGaveUp++
        continue
      }
      requests ??= new Map()
      let request = requests.get(announcer)
      if (request === undefined) {
        request = { ids: [], topic: entry.topic }
        requests.set(announcer, request)
      }
      if (request.ids.length >= this.config.iwantIdsMax) continue
      entry.tries++
      entry.deadline = now + this.config.retryTimeoutMs
      request.ids.push(id)
    }
    if (requests === undefined) return
    for (const [peer, request] of requests) this.sendRequest(peer, request)
  }

  private nextAnnouncer(entry: Missing<P>): P | undefined {
    const count = entry.announcers.length
    for (let i = 0; i < count; i++) {
      const id = entry.announcers[(entry.tries + i) % count]!
      if (this.peers.has(id)) return id
    }
    // Every announcer has left (churn): our parent most likely holds the message too, so ask it before
    // giving up; nobody announces an id twice, so a message given up on is lost to this node.
    const parent = this.topics.get(entry.topic)?.tree.parent
    return parent !== undefined && this.peers.has(parent) ? parent : undefined
  }

  private sendRequest(peer: P, request: Request<K>): void {
    this.counters.iwantIdsSent += request.ids.length
    const state = this.topics.get(request.topic)
    const parent = state?.tree.parent
    // Our parent will most likely repair the same loss and push its copy to us: tell it not to.
    if (this.config.idontwantOnRequest && parent !== undefined && parent !== peer) {
      this.sendIdontwantTo(parent, { kind: Kind.Idontwant, ids: request.ids }, request.ids.length)
    }
    this.sink.send(peer, { kind: Kind.Iwant, ids: request.ids })
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

  private onSubscribe(now: number, peer: PeerState<P, K>, topics: ReadonlyArray<string>, subscribe: boolean): void {
    for (const topic of topics) {
      const state = this.topics.get(topic)
      if (!subscribe) {
        peer.topics.delete(topic)
        if (state !== undefined && state.peers.delete(peer.id) && state.tree.onPeerDown(now, peer.id)) this.advertise(now, state)
        continue
      }
      if (peer.topics.has(topic)) continue
      if (peer.topics.size >= this.config.topicsPerPeerMax) {
        this.counters.topicsDropped++
        continue
      }
      peer.topics.add(topic)
      if (state === undefined) continue
      state.peers.add(peer.id)
      this.sendAdvert(state, peer.id)
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
    const message: Message<K, D, P> = { kind: Kind.Subscribe, topics, subscribe }
    for (const id of this.peers.keys()) this.sink.send(id, message)
  }

  private penalize(now: number, peer: PeerState<P, K>, amount: number): void {
    peer.score -= amount
    if (peer.score < this.config.pruneThreshold) {
      // No tree edge to a peer we no longer trust: treat it as gone from the tree (it stays a neighbour).
      for (const state of this.topics.values()) {
        if (state.tree.isEager(peer.id) && state.tree.onPeerDown(now, peer.id)) this.advertise(now, state)
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
    this.seen.expire(now)
  }
}

/** A Weft engine for one node. */
export const make = <P extends string | number, K, D>(options: Options<P, K, D>, config: Config): Engine<P, K, D> =>
  new WeftEngine(options, config)
