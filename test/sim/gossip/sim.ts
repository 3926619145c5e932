/**
 * The gossip network simulator: N nodes in one process, each running a dissemination engine (Weft,
 * flood or GossipSub-like) behind the same interface, over a seeded discrete-event network in virtual
 * milliseconds (a binary-heap event queue, never real timers).
 *
 * The network: a log-normal latency per link (seeded hash of the pair, plus jitter), independent loss
 * per gossip message (SUBSCRIBE excepted: it is part of session setup, which the link layer retries),
 * churn (a share of nodes leaves and later rejoins through a seed and peer exchange), an optional
 * partition, flooders (invalid messages to every neighbour), droppers (never forward data) and flapping
 * peers. A connection manager per node keeps its degree between low and high watermarks: it never dials
 * a connected peer or one being dialed (by it or by the other side), backs off failed and banned dials,
 * and a simultaneous dial collapses into the one link.
 *
 * A message is *expected* at an honest node that is up from its publication until `expectWindowMs`
 * after it and was not rejoining within `rejoinGraceMs` before it; the delivery ratio counts those.
 * The same options and seed give the same run, to the bit (`resultHash`).
 */
import { createHash } from "node:crypto"
import { type Config, type Engine, Validation } from "../../../packages/core/src/internal/gossipEngine.js"
import { type Data, Kind, type Message, wireBytes } from "../../../packages/core/src/internal/gossipMessage.js"
import * as Strategies from "../../../packages/core/src/internal/gossipStrategies.js"
import * as Prng from "../../../packages/core/src/internal/prng.js"
import { EventQueue } from "./eventQueue.js"

/** What a run is made of. */
export interface Options {
  readonly strategy: Strategies.Strategy
  readonly seed: number
  readonly nodes: number
  readonly messages: number
  /** Network-wide publications per second. */
  readonly publishPerSecond: number
  /** Publishers in turn (node i publishes messages i, i+N, ...) instead of at random. */
  readonly roundRobin: boolean
  readonly payloadBytes: number
  readonly loss: number
  /**
   * What a loss does. "retransmit": gossip rides on Weft's reliable streams, so a message lost on a live
   * session is resent after the retransmit timeout (max(200 ms, 1.5 RTT), doubling per further loss) and
   * arrives late, not never; it is lost only if the session closes first (messages are modelled as
   * independent: no head-of-line blocking). "drop" (default, the pessimistic bound): the message is
   * gone, control messages included.
   */
  readonly lossMode: "retransmit" | "drop"
  /** Share of nodes that leave once during publishing and rejoin 1–5 s later. */
  readonly churn: number
  readonly latencyMedianMs: number
  readonly latencySigma: number
  readonly degreeLow: number
  readonly degreeTarget: number
  readonly degreeHigh: number
  readonly seedNodes: number
  readonly warmupMs: number
  readonly drainMs: number
  readonly expectWindowMs: number
  readonly rejoinGraceMs: number
  readonly partition: { readonly atMs: number; readonly healMs: number } | undefined
  readonly flooders: number
  readonly floodPerSecond: number
  readonly droppers: number
  /** Nodes that drop and restore all their links every `flapMs`. */
  readonly flappers: number
  readonly flapMs: number
  readonly sampleMs: number
  /** Stop (and report `capped`) after this much wall time. */
  readonly wallCapSeconds: number
  readonly config: Config
}

/** The result of a run. */
export interface Report {
  readonly strategy: string
  readonly nodes: number
  readonly messages: number
  readonly seed: number
  readonly deliveryRatio: number
  readonly expected: number
  readonly deliveredExpected: number
  readonly amplification: number
  readonly bytesPerNode: number
  readonly hopsP50: number
  readonly hopsP99: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  readonly peakMemoryPerNodeBytes: number
  readonly peakMemoryMaxNodeBytes: number
  readonly wallSeconds: number
  readonly simulatedSeconds: number
  readonly events: number
  readonly capped: boolean
  readonly published: number
  readonly dataSent: number
  readonly dataReceived: number
  readonly lost: number
  readonly duplicateDeliveries: number
  /** Deliveries to nodes the message was not expected at (it was published around their leaving). */
  readonly catchUpDeliveries: number
  readonly invalidDelivered: number
  readonly dialViolations: number
  readonly dialsCollapsed: number
  readonly adversariesConnectedAtEnd: number
  readonly counters: Record<string, number>
  readonly boundsMax: Record<string, number>
  /** Mean estimated engine memory per online node at each sample. */
  readonly memorySeries: ReadonlyArray<number>
  /** Estimated memory of the flapping nodes' neighbours at each sample (mean). */
  readonly flapNeighbourMemorySeries: ReadonlyArray<number>
  /** Latency histogram, 1 ms buckets (first deliveries where expected, publishers excluded). */
  readonly latencyHistogram: Uint32Array
  readonly resultHash: string
}

const TOPIC = "sim"
const EV_MESSAGE = 0
const EV_TICK = 1
const EV_PUBLISH = 2
const EV_LEAVE = 3
const EV_JOIN = 4
const EV_DIAL = 5
const EV_PX = 6
const EV_CONNECT_CHECK = 7
const EV_DISCONNECT = 8
const EV_SAMPLE = 9
const EV_FLOOD = 10
const EV_PARTITION = 11
const EV_FLAP = 12

const HONEST = 0
const FLOODER = 1
const DROPPER = 2
const FLAPPER = 3

const LATENCY_BUCKETS = 120_000
/** The streams' minimum retransmit timeout (`Limits.retransmitTimeoutMin`). */
const RTO_MIN_MS = 200
const DIAL_BACKOFF_MS = 10_000
const BAN_MS = 600_000
const CONNECT_CHECK_MS = 1000
const KNOWN_MAX = 32
const SEED_KNOWN_MAX = 1024

type Id = number
type Payload = number
type SimMessage = Message<Id, Payload, Id>

/** Mixes a 32-bit value (murmur3 finaliser). */
const mix32 = (x: number): number => {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

/** The defaults: the `npm run sim:gossip` run (10,000 nodes x 1,000 messages, 5% loss, 10% churn). */
export const defaults: Omit<Options, "config"> = {
  strategy: "weft",
  seed: 1,
  nodes: 10_000,
  messages: 1000,
  publishPerSecond: 50,
  roundRobin: false,
  payloadBytes: 512,
  loss: 0.05,
  lossMode: "drop",
  churn: 0.1,
  latencyMedianMs: 50,
  latencySigma: 0.5,
  degreeLow: 8,
  degreeTarget: 12,
  degreeHigh: 16,
  seedNodes: 8,
  warmupMs: 3000,
  drainMs: 10_000,
  expectWindowMs: 5000,
  rejoinGraceMs: 2000,
  partition: undefined,
  flooders: 0,
  floodPerSecond: 100,
  droppers: 0,
  flappers: 0,
  flapMs: 100,
  sampleMs: 1000,
  wallCapSeconds: 600
}

/** Runs one simulation. Synchronous: it owns the process until done (or capped). */
export const run = (options: Options): Report => new Simulation(options).run()

class Simulation {
  private readonly n: number
  private readonly m: number
  private readonly queue = new EventQueue()
  private readonly prng: Prng.Prng
  private readonly engines: Array<Engine<Id, Id, Payload>> = []
  private readonly adjacency: Array<Set<number>> = []
  private readonly dialing: Array<Set<number> | undefined> = []
  private readonly backoff: Array<Map<number, number> | undefined> = []
  private readonly known: Array<Array<number>> = []
  private readonly flapPartners: Array<Array<number>> = []
  private readonly seedKnown: Array<number> = []
  private readonly online: Uint8Array
  private readonly role: Uint8Array
  private readonly side: Uint8Array
  private readonly leaveAt: Float64Array
  private readonly joinAt: Float64Array
  private readonly publishAt: Float64Array
  private readonly delivered: Uint8Array
  private readonly hops: Uint8Array
  private readonly hopHistogram = new Float64Array(256)
  private readonly latencyHistogram = new Uint32Array(LATENCY_BUCKETS)
  private readonly latencySeed: number
  private readonly memorySeries: Array<number> = []
  private readonly flapSeries: Array<number> = []
  private readonly boundsMax: Record<string, number> = {}
  private now = 0
  private endAt = 0
  private partitioned = false
  private nextInvalidId: number
  private hash = 0x811c9dc5
  private events = 0
  private published = 0
  private bytes = 0
  private dataSent = 0
  private dataReceived = 0
  private lost = 0
  private deliveries = 0
  private duplicateDeliveries = 0
  private catchUpDeliveries = 0
  private invalidDelivered = 0
  private dialViolations = 0
  private dialsCollapsed = 0
  private peakMemoryMean = 0
  private peakMemoryMax = 0

  constructor(private readonly options: Options) {
    this.n = options.nodes
    this.m = options.messages
    this.prng = Prng.make(options.seed)
    this.latencySeed = this.prng.nextUint32()
    this.online = new Uint8Array(this.n).fill(1)
    this.role = new Uint8Array(this.n)
    this.side = new Uint8Array(this.n)
    this.leaveAt = new Float64Array(this.n).fill(Number.POSITIVE_INFINITY)
    this.joinAt = new Float64Array(this.n).fill(Number.NEGATIVE_INFINITY)
    this.publishAt = new Float64Array(this.m)
    this.delivered = new Uint8Array(this.n * this.m)
    this.hops = new Uint8Array(this.n * this.m)
    this.nextInvalidId = this.m
  }

  run(): Report {
    const started = performance.now()
    this.setup()
    const capMs = this.options.wallCapSeconds * 1000
    const queue = this.queue
    let capped = false
    while (queue.size > 0) {
      if (queue.peekTime() > this.endAt) break
      const slot = queue.pop()
      this.now = queue.time[slot]!
      const kind = queue.kind[slot]!
      const a = queue.a[slot]!
      const b = queue.b[slot]!
      const ref = queue.ref[slot]
      queue.release(slot)
      this.dispatch(kind, a, b, ref)
      if ((++this.events & 0xffff) === 0 && performance.now() - started > capMs) {
        capped = true
        break
      }
    }
    return this.report((performance.now() - started) / 1000, capped)
  }

  private dispatch(kind: number, a: number, b: number, ref: unknown): void {
    switch (kind) {
      case EV_MESSAGE:
        return this.arrive(a, b, ref as SimMessage)
      case EV_TICK:
        this.engines[a]!.onTick(this.now)
        return this.queue.push(this.now + this.tickMs(), EV_TICK, a, 0, undefined)
      case EV_PUBLISH:
        return this.publish(a)
      case EV_LEAVE:
        return this.leave(a)
      case EV_JOIN:
        return this.join(a)
      case EV_DIAL:
        return this.dialDone(a, b)
      case EV_PX:
        return this.peerExchange(a, b)
      case EV_CONNECT_CHECK:
        this.connectCheck(a)
        return this.queue.push(this.now + CONNECT_CHECK_MS, EV_CONNECT_CHECK, a, 0, undefined)
      case EV_DISCONNECT:
        return this.ban(a, b)
      case EV_SAMPLE:
        this.sample()
        return this.queue.push(this.now + this.options.sampleMs, EV_SAMPLE, 0, 0, undefined)
      case EV_FLOOD:
        return this.flood(a)
      case EV_PARTITION:
        this.partitioned = a === 1
        return
      case EV_FLAP:
        return this.flap(a)
    }
  }

  private tickMs(): number {
    const config = this.options.config
    return this.options.strategy === "weft" ? config.tickMs : this.options.strategy === "gossipsub" ? config.heartbeatMs : 1000
  }

  // --- setup -------------------------------------------------------------------------------------

  private setup(): void {
    const { options } = this
    for (let i = 0; i < this.n; i++) {
      this.adjacency.push(new Set())
      this.dialing.push(undefined)
      this.backoff.push(undefined)
      this.known.push([])
      this.flapPartners.push([])
      this.side[i] = this.prng.nextFloat() < 0.5 ? 0 : 1
      this.engines.push(Strategies.make(options.strategy, {
        self: i,
        sink: this.makeSink(i),
        prng: Prng.make(mix32(options.seed ^ Math.imul(i + 1, 0x9e3779b1))),
        validate: (_topic, message) => (message.id < this.m ? Validation.Accept : Validation.Reject)
      }, options.config))
    }
    this.assignRoles()
    this.buildOverlay()
    for (let i = 0; i < this.n; i++) {
      this.engines[i]!.subscribe(0, TOPIC)
      for (const peer of this.adjacency[i]!) this.engines[i]!.peerUp(0, peer)
      this.queue.push(this.prng.nextFloat() * this.tickMs(), EV_TICK, i, 0, undefined)
      this.queue.push(this.prng.nextFloat() * CONNECT_CHECK_MS, EV_CONNECT_CHECK, i, 0, undefined)
    }
    for (let s = 0; s < Math.min(SEED_KNOWN_MAX, this.n); s++) this.seedKnown.push(this.prng.nextInt(0, this.n - 1))
    this.schedulePublications()
    this.scheduleChurn()
    this.scheduleAdversaries()
    if (options.partition !== undefined) {
      this.queue.push(options.partition.atMs, EV_PARTITION, 1, 0, undefined)
      this.queue.push(options.partition.healMs, EV_PARTITION, 0, 0, undefined)
    }
    this.queue.push(0, EV_SAMPLE, 0, 0, undefined)
  }

  private assignRoles(): void {
    const { options } = this
    // Seeds (the first `seedNodes`) stay honest and up; adversaries are drawn from the rest.
    const pool: Array<number> = []
    for (let i = options.seedNodes; i < this.n; i++) pool.push(i)
    const take = (count: number, role: number): void => {
      for (let k = 0; k < count && pool.length > 0; k++) {
        const index = this.prng.nextInt(0, pool.length - 1)
        this.role[pool[index]!] = role
        pool[index] = pool[pool.length - 1]!
        pool.pop()
      }
    }
    take(options.flooders, FLOODER)
    take(options.droppers, DROPPER)
    take(options.flappers, FLAPPER)
  }

  private buildOverlay(): void {
    const { degreeLow, degreeTarget, degreeHigh } = this.options
    for (let i = 0; i < this.n; i++) {
      const want = this.prng.nextInt(degreeLow, degreeTarget)
      let attempts = 0
      while (this.adjacency[i]!.size < want && attempts++ < 20 * want) {
        const j = this.prng.nextInt(0, this.n - 1)
        if (j === i || this.adjacency[i]!.has(j) || this.adjacency[j]!.size >= degreeHigh) continue
        this.adjacency[i]!.add(j)
        this.adjacency[j]!.add(i)
      }
    }
    for (let i = 0; i < this.n; i++) if (this.role[i] === FLAPPER) this.flapPartners[i] = [...this.adjacency[i]!]
  }

  private schedulePublications(): void {
    const interval = 1000 / this.options.publishPerSecond
    for (let k = 0; k < this.m; k++) this.queue.push(this.options.warmupMs + k * interval, EV_PUBLISH, k, 0, undefined)
    this.endAt = this.options.warmupMs + this.m * interval + this.options.drainMs
  }

  private scheduleChurn(): void {
    const { options } = this
    const start = options.warmupMs
    const span = Math.max(1, this.m * (1000 / options.publishPerSecond))
    const candidates: Array<number> = []
    for (let i = options.seedNodes; i < this.n; i++) if (this.role[i] === HONEST) candidates.push(i)
    const leaving = Math.round(options.churn * this.n)
    for (let k = 0; k < leaving && candidates.length > 0; k++) {
      const index = this.prng.nextInt(0, candidates.length - 1)
      const node = candidates[index]!
      candidates[index] = candidates[candidates.length - 1]!
      candidates.pop()
      const leave = start + this.prng.nextFloat() * span
      const join = leave + 1000 + this.prng.nextFloat() * 4000
      this.leaveAt[node] = leave
      this.joinAt[node] = join
      this.queue.push(leave, EV_LEAVE, node, 0, undefined)
      this.queue.push(join, EV_JOIN, node, 0, undefined)
    }
  }

  private scheduleAdversaries(): void {
    for (let i = 0; i < this.n; i++) {
      if (this.role[i] === FLOODER) this.queue.push(this.options.warmupMs, EV_FLOOD, i, 0, undefined)
      if (this.role[i] === FLAPPER) this.queue.push(this.options.warmupMs, EV_FLAP, i, 0, undefined)
    }
  }

  // --- the network -------------------------------------------------------------------------------

  private makeSink(node: number) {
    return {
      send: (to: number, message: SimMessage) => this.send(node, to, message),
      deliver: (message: Data<Id, Payload>, from: number) => this.deliver(node, message.id, from),
      // Deferred: sinks must not re-enter the engine that called them.
      disconnect: (peer: number) => this.queue.push(this.now, EV_DISCONNECT, node, peer, undefined)
    }
  }

  private linkLatency(a: number, b: number): number {
    const low = a < b ? a : b
    const high = a < b ? b : a
    const h1 = mix32(Math.imul(low, 0x9e3779b1) ^ mix32(high ^ this.latencySeed))
    const h2 = mix32(h1 ^ 0x68e31da4)
    const u1 = (h1 + 0.5) / 4294967296
    const u2 = h2 / 4294967296
    const normal = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2)
    return this.options.latencyMedianMs * Math.exp(this.options.latencySigma * normal)
  }

  private send(from: number, to: number, message: SimMessage): void {
    if (message.kind === Kind.Data) {
      if (this.role[from] === DROPPER) return
      this.dataSent++
    }
    this.bytes += wireBytes(message)
    const { loss } = this.options
    const lost = message.kind !== Kind.Subscribe && loss > 0 && this.prng.nextFloat() < loss
    if (lost) {
      this.lost++
      if (this.options.lossMode === "drop") return
    }
    if (this.partitioned && this.side[from] !== this.side[to]) {
      this.lost++
      return
    }
    const latency = this.linkLatency(from, to)
    let delay = latency * (1 + 0.1 * this.prng.nextFloat())
    if (lost) {
      // Resent after the RTO (srtt + 4 rttvar ~ 1.5 RTT on a steady link), backing off per further loss.
      let rto = Math.max(RTO_MIN_MS, 3 * latency)
      delay += rto
      while (this.prng.nextFloat() < loss) {
        rto *= 2
        delay += rto
      }
    }
    this.queue.push(this.now + delay, EV_MESSAGE, from, to, message)
  }

  private arrive(from: number, to: number, message: SimMessage): void {
    // A message still in flight when its link closed is lost with the link.
    if (!this.adjacency[to]!.has(from)) return
    if (message.kind === Kind.Data && message.id < this.m) this.dataReceived++
    this.engines[to]!.onMessage(this.now, from, message)
  }

  private deliver(node: number, id: number, from: number): void {
    if (id >= this.m) {
      this.invalidDelivered++
      return
    }
    const key = node * this.m + id
    if (this.delivered[key] !== 0) {
      this.duplicateDeliveries++
      return
    }
    this.delivered[key] = 1
    const hop = Math.min(255, this.hops[from * this.m + id]! + 1)
    this.hops[key] = hop
    const latency = this.now - this.publishAt[id]!
    // Hops and latency describe dissemination to the nodes that were up for the message; a node that
    // left and came back may still catch up on it later, which is counted, but not as latency.
    if (this.expectedAt(node, id)) {
      this.hopHistogram[hop]!++
      this.latencyHistogram[Math.min(LATENCY_BUCKETS - 1, Math.floor(latency))]!++
    } else {
      this.catchUpDeliveries++
    }
    this.deliveries++
    this.hash = Math.imul(this.hash ^ mix32(key ^ Math.floor(latency * 16)), 0x01000193) >>> 0
  }

  private publish(message: number): void {
    let publisher = this.options.roundRobin ? message % this.n : this.prng.nextInt(0, this.n - 1)
    for (let k = 0; k < this.n && (this.role[publisher] !== HONEST || this.online[publisher] === 0); k++) {
      publisher = (publisher + 1) % this.n
    }
    this.publishAt[message] = this.now
    this.delivered[publisher * this.m + message] = 1
    this.published++
    this.engines[publisher]!.publish(this.now, TOPIC, message, message, this.options.payloadBytes)
  }

  // --- churn, connection management and adversaries ---------------------------------------------

  private link(a: number, b: number): void {
    this.adjacency[a]!.add(b)
    this.adjacency[b]!.add(a)
    this.engines[a]!.peerUp(this.now, b)
    this.engines[b]!.peerUp(this.now, a)
  }

  private unlink(a: number, b: number): void {
    if (!this.adjacency[a]!.delete(b)) return
    this.adjacency[b]!.delete(a)
    this.engines[a]!.peerDown(this.now, b)
    this.engines[b]!.peerDown(this.now, a)
  }

  private leave(node: number): void {
    this.online[node] = 0
    for (const peer of [...this.adjacency[node]!]) this.unlink(node, peer)
    this.dialing[node]?.clear()
    this.known[node] = []
  }

  private join(node: number): void {
    this.online[node] = 1
    this.requestPeers(node)
  }

  private requestPeers(node: number): void {
    const neighbours = this.adjacency[node]!
    let source: number
    if (neighbours.size > 0) {
      const list = [...neighbours]
      source = list[this.prng.nextInt(0, list.length - 1)]!
    } else {
      source = this.prng.nextInt(0, Math.max(0, this.options.seedNodes - 1))
      if (source === node) return
    }
    this.queue.push(this.now + 2 * this.linkLatency(node, source), EV_PX, node, source, undefined)
  }

  private peerExchange(node: number, source: number): void {
    if (this.online[node] === 0 || this.online[source] === 0) return
    const offered = [...this.adjacency[source]!]
    if (source < this.options.seedNodes) {
      for (let k = 0; k < 16; k++) offered.push(this.seedKnown[this.prng.nextInt(0, this.seedKnown.length - 1)]!)
      this.seedKnown[this.prng.nextInt(0, this.seedKnown.length - 1)] = node
    }
    offered.push(source)
    const known = this.known[node]!
    for (const peer of offered) if (known.length < KNOWN_MAX && !known.includes(peer)) known.push(peer)
    this.dialSome(node)
  }

  private dialSome(node: number): void {
    const known = this.known[node]!
    let need = this.options.degreeTarget - this.adjacency[node]!.size - (this.dialing[node]?.size ?? 0)
    while (need > 0 && known.length > 0) {
      const index = this.prng.nextInt(0, known.length - 1)
      const peer = known[index]!
      known[index] = known[known.length - 1]!
      known.pop()
      if (!this.mayDial(node, peer)) continue
      this.dial(node, peer)
      need--
    }
  }

  private mayDial(node: number, peer: number): boolean {
    if (peer === node || this.adjacency[node]!.has(peer)) return false
    if (this.dialing[node]?.has(peer) === true || this.dialing[peer]?.has(node) === true) return false
    const until = this.backoff[node]?.get(peer)
    return until === undefined || until <= this.now
  }

  private dial(node: number, peer: number): void {
    // The invariant the connection manager keeps: never dial a peer that is connected or being dialed.
    if (this.adjacency[node]!.has(peer) || this.dialing[node]?.has(peer) === true) this.dialViolations++
    let set = this.dialing[node]
    if (set === undefined) {
      set = new Set()
      this.dialing[node] = set
    }
    set.add(peer)
    this.queue.push(this.now + 2 * this.linkLatency(node, peer), EV_DIAL, node, peer, undefined)
  }

  private dialDone(node: number, peer: number): void {
    if (this.dialing[node]?.delete(peer) !== true || this.online[node] === 0) return
    if (this.adjacency[node]!.has(peer)) {
      this.dialsCollapsed++
      return
    }
    const refused = this.online[peer] === 0 || this.adjacency[peer]!.size >= this.options.degreeHigh ||
      this.adjacency[node]!.size >= this.options.degreeHigh || (this.backoff[peer]?.get(node) ?? 0) > this.now
    if (refused) return this.setBackoff(node, peer, this.now + DIAL_BACKOFF_MS)
    this.link(node, peer)
  }

  private setBackoff(node: number, peer: number, until: number): void {
    let map = this.backoff[node]
    if (map === undefined) {
      map = new Map()
      this.backoff[node] = map
    }
    map.delete(peer)
    if (map.size >= 64) map.delete(map.keys().next().value!)
    map.set(peer, until)
  }

  private ban(node: number, peer: number): void {
    this.setBackoff(node, peer, this.now + BAN_MS)
    this.unlink(node, peer)
  }

  private connectCheck(node: number): void {
    if (this.online[node] === 0 || this.role[node] === FLAPPER) return
    const degree = this.adjacency[node]!.size
    if (degree > this.options.degreeHigh) {
      const list = [...this.adjacency[node]!]
      for (let k = degree; k > this.options.degreeTarget; k--) {
        this.unlink(node, list.splice(this.prng.nextInt(0, list.length - 1), 1)[0]!)
      }
      return
    }
    if (degree + (this.dialing[node]?.size ?? 0) >= this.options.degreeLow) return
    if (this.known[node]!.length > 0) this.dialSome(node)
    else this.requestPeers(node)
  }

  private flood(node: number): void {
    if (this.now > this.endAt - this.options.drainMs) return
    if (this.online[node] === 1 && this.adjacency[node]!.size > 0) {
      const id = this.nextInvalidId++
      const message: SimMessage = { kind: Kind.Data, topic: TOPIC, id, data: id, bytes: this.options.payloadBytes }
      for (const peer of this.adjacency[node]!) this.send(node, peer, message)
    }
    this.queue.push(this.now + 1000 / this.options.floodPerSecond, EV_FLOOD, node, 0, undefined)
  }

  private flap(node: number): void {
    if (this.adjacency[node]!.size > 0) {
      for (const peer of [...this.adjacency[node]!]) this.unlink(node, peer)
    } else {
      for (const peer of this.flapPartners[node]!) {
        if (this.online[peer] === 1 && this.adjacency[peer]!.size < this.options.degreeHigh) this.link(node, peer)
      }
    }
    if (this.now < this.endAt) this.queue.push(this.now + this.options.flapMs, EV_FLAP, node, 0, undefined)
  }

  // --- measurement -------------------------------------------------------------------------------

  private sample(): void {
    let sum = 0
    let count = 0
    let flapSum = 0
    let flapCount = 0
    for (let i = 0; i < this.n; i++) {
      if (this.online[i] === 0) continue
      const bytes = this.engines[i]!.memoryBytes()
      sum += bytes
      count++
      if (bytes > this.peakMemoryMax) this.peakMemoryMax = bytes
      const sizes = this.engines[i]!.sizes() as unknown as Record<string, number>
      for (const key in sizes) if ((this.boundsMax[key] ?? 0) < sizes[key]!) this.boundsMax[key] = sizes[key]!
    }
    for (let i = 0; i < this.n; i++) {
      if (this.role[i] !== FLAPPER) continue
      for (const peer of this.flapPartners[i]!) {
        flapSum += this.engines[peer]!.memoryBytes()
        flapCount++
      }
    }
    const mean = count === 0 ? 0 : sum / count
    this.memorySeries.push(Math.round(mean))
    if (flapCount > 0) this.flapSeries.push(Math.round(flapSum / flapCount))
    if (mean > this.peakMemoryMean) this.peakMemoryMean = mean
  }

  private expectedAt(node: number, message: number): boolean {
    if (this.role[node] !== HONEST) return false
    const at = this.publishAt[message]!
    if (at + this.options.expectWindowMs >= this.leaveAt[node]! && at < this.joinAt[node]! + this.options.rejoinGraceMs) {
      return false
    }
    return true
  }

  private report(wallSeconds: number, capped: boolean): Report {
    let expected = 0
    let deliveredExpected = 0
    for (let node = 0; node < this.n; node++) {
      for (let message = 0; message < this.published; message++) {
        if (!this.expectedAt(node, message)) continue
        expected++
        if (this.delivered[node * this.m + message] !== 0) deliveredExpected++
      }
    }
    const counters: Record<string, number> = {}
    for (const engine of this.engines) {
      for (const [key, value] of Object.entries(engine.counters)) counters[key] = (counters[key] ?? 0) + value
    }
    let adversariesConnected = 0
    for (let i = 0; i < this.n; i++) if (this.role[i] === FLOODER) adversariesConnected += this.adjacency[i]!.size
    const latencyP50 = percentile(this.latencyHistogram, 0.5)
    const latencyP99 = percentile(this.latencyHistogram, 0.99)
    const summary = {
      strategy: this.options.strategy,
      nodes: this.n,
      messages: this.m,
      seed: this.options.seed,
      deliveryRatio: expected === 0 ? 1 : deliveredExpected / expected,
      expected,
      deliveredExpected,
      amplification: this.deliveries === 0 ? 0 : this.dataReceived / this.deliveries,
      bytesPerNode: Math.round(this.bytes / this.n),
      hopsP50: percentile(this.hopHistogram, 0.5),
      hopsP99: percentile(this.hopHistogram, 0.99),
      latencyP50Ms: latencyP50,
      latencyP99Ms: latencyP99,
      peakMemoryPerNodeBytes: Math.round(this.peakMemoryMean),
      peakMemoryMaxNodeBytes: this.peakMemoryMax,
      wallSeconds: Math.round(wallSeconds * 100) / 100,
      simulatedSeconds: Math.round(this.now) / 1000,
      events: this.events,
      capped,
      published: this.published,
      dataSent: this.dataSent,
      dataReceived: this.dataReceived,
      lost: this.lost,
      duplicateDeliveries: this.duplicateDeliveries,
      catchUpDeliveries: this.catchUpDeliveries,
      invalidDelivered: this.invalidDelivered,
      dialViolations: this.dialViolations,
      dialsCollapsed: this.dialsCollapsed,
      adversariesConnectedAtEnd: adversariesConnected,
      counters,
      boundsMax: this.boundsMax
    }
    const { wallSeconds: _wall, ...deterministic } = summary
    const resultHash = createHash("sha256")
      .update(JSON.stringify(deterministic))
      .update(String(this.hash))
      .digest("hex")
      .slice(0, 16)
    return {
      ...summary,
      memorySeries: this.memorySeries,
      flapNeighbourMemorySeries: this.flapSeries,
      latencyHistogram: this.latencyHistogram,
      resultHash
    }
  }
}

/** The value below which `q` of the histogram's mass lies (bucket index = value). */
export const percentile = (histogram: ArrayLike<number>, q: number): number => {
  let total = 0
  for (let i = 0; i < histogram.length; i++) total += histogram[i]!
  if (total === 0) return 0
  const target = q * total
  let seen = 0
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i]!
    if (seen >= target) return i
  }
  return histogram.length - 1
}
