/**
 * The contract every gossip dissemination engine implements (Weft, flood, GossipSub-like), and the
 * parts they share: configuration (bounds from `Limits`, tunables beside them), counters, the output
 * sink, validation results and the per-peer token bucket.
 *
 * An engine is a pure, synchronous, deterministic state machine for one node: no Effect, no timers, no
 * I/O. Time comes in as a number of milliseconds, randomness from a seeded `Prng`, and every output goes
 * to a `Sink` the caller provides (the simulator's event queue, or the node's `Gossip` service which
 * writes to message streams). The same inputs in the same order always give the same outputs.
 */
import { Duration } from "effect"
import type * as Limits from "../Limits.js"
import type { Data, Message } from "./gossipMessage.js"
import type { Prng } from "./prng.js"

/** What a topic validator says about a message (GossipSub semantics). */
export const Validation = {
  /** Deliver and forward. */
  Accept: 0,
  /** Drop and penalise the peer that sent it: the message is provably invalid. */
  Reject: 1,
  /** Drop without penalty (e.g. stale), remember it as seen. */
  Ignore: 2
} as const

/** One of `Validation`. */
export type Validation = typeof Validation[keyof typeof Validation]

/** Where an engine's outputs go. Called synchronously from inside the engine's inputs. */
export interface Sink<P, K, D> {
  /** Send `message` to the connected peer `to`. */
  readonly send: (to: P, message: Message<K, D, P>) => void
  /** A new, valid message for the local application (at most once per id within the seen window). */
  readonly deliver: (message: Data<K, D>, from: P) => void
  /** The engine wants the session to `peer` closed (its score fell below the disconnect threshold). */
  readonly disconnect: (peer: P) => void
}

/** Outcome of a local `publish`. */
export type PublishResult = "Published" | "Duplicate" | "TooLarge" | "Rejected" | "NoPeers"

/** Counters every engine keeps (monotonic; zero where a strategy has no such thing). */
export interface Counters {
  received: number
  receivedData: number
  delivered: number
  duplicates: number
  /** Weft: duplicates by cause (a second copy over a tree edge, as while a parent changes; a late tree copy of a message we fetched; from a non-tree peer). */
  duplicatesTree: number
  duplicatesLate: number
  duplicatesUnsolicited: number
  forwarded: number
  invalid: number
  ignored: number
  unknownPeer: number
  notSubscribed: number
  rateLimited: number
  graylisted: number
  tooLarge: number
  ihaveIdsSent: number
  ihaveIdsDropped: number
  iwantIdsSent: number
  iwantIdsServed: number
  iwantIdsDropped: number
  graftsSent: number
  /** Weft: tree advertisements sent. */
  treeAdvertsSent: number
  prunesSent: number
  idontwantIdsSent: number
  suppressed: number
  missingDropped: number
  missingGaveUp: number
  disconnects: number
  retainedScoresEvicted: number
  topicsDropped: number
}

/** A fresh set of counters. */
export const makeCounters = (): Counters => ({
  received: 0,
  receivedData: 0,
  delivered: 0,
  duplicates: 0,
  duplicatesTree: 0,
  duplicatesLate: 0,
  duplicatesUnsolicited: 0,
  forwarded: 0,
  invalid: 0,
  ignored: 0,
  unknownPeer: 0,
  notSubscribed: 0,
  rateLimited: 0,
  graylisted: 0,
  tooLarge: 0,
  ihaveIdsSent: 0,
  ihaveIdsDropped: 0,
  iwantIdsSent: 0,
  iwantIdsServed: 0,
  iwantIdsDropped: 0,
  graftsSent: 0,
  treeAdvertsSent: 0,
  prunesSent: 0,
  idontwantIdsSent: 0,
  suppressed: 0,
  missingDropped: 0,
  missingGaveUp: 0,
  disconnects: 0,
  retainedScoresEvicted: 0,
  topicsDropped: 0
})

/** Current sizes of an engine's bounded structures, for tests that check bounds and memory. */
export interface Sizes {
  readonly peers: number
  readonly seen: number
  readonly seenPayloadBytes: number
  readonly missing: number
  readonly pendingIhave: number
  readonly dontwantMax: number
  readonly retainedScores: number
  readonly topicsPerPeerMax: number
}

/**
 * One node's dissemination engine. Sinks must not call back into the engine synchronously (defer a
 * `disconnect` or a publish from `deliver` to the caller's next turn).
 */
export interface Engine<P, K, D> {
  /** "weft", "flood" or "gossipsub". */
  readonly strategy: string
  readonly counters: Counters
  /** Joins `topic`: its messages are delivered, forwarded and announced from now on. */
  subscribe(now: number, topic: string): void
  /** Leaves `topic`. */
  unsubscribe(now: number, topic: string): void
  /** Publishes a local message whose content id the caller computed (`gossipMessage.messageId`). */
  publish(now: number, topic: string, data: D, id: K, bytes: number): PublishResult
  /** A message arrived from the connected peer `from`. */
  onMessage(now: number, from: P, message: Message<K, D, P>): void
  /** Periodic work (announcements, repair timers, heartbeats, expiry); call every `config.tickMs`. */
  onTick(now: number): void
  /** A session to `peer` opened. */
  peerUp(now: number, peer: P): void
  /** The session to `peer` closed; all its per-peer state is released (a bad score may be retained). */
  peerDown(now: number, peer: P): void
  /** Current sizes of the bounded structures. */
  sizes(): Sizes
  /** Estimated bytes held by this engine's data structures (see `memoryBytes` in each engine). */
  memoryBytes(): number
}

/** Everything an engine is built from. */
export interface Options<P, K, D> {
  /** This node's id (Weft elects the smallest subscriber id as a topic's tree root). */
  readonly self: P
  readonly sink: Sink<P, K, D>
  readonly prng: Prng
  /** Per-topic validation, run before a message is delivered or forwarded. Default: accept. */
  readonly validate?: (topic: string, message: Data<K, D>, from: P | undefined) => Validation
}

/** Bounds (from `Limits`) and tunables of an engine, all numbers, times in ms. */
export interface Config {
  // Bounds (Limits)
  readonly messageBytesMax: number
  readonly seenEntriesMax: number
  readonly seenWindowMs: number
  readonly payloadWindowMs: number
  readonly ihaveIdsMax: number
  readonly iwantIdsMax: number
  readonly iwantServedPerPeerPerSecond: number
  readonly missingEntriesMax: number
  readonly dontwantIdsPerPeerMax: number
  readonly topicsPerPeerMax: number
  readonly retainedScoresMax: number
  readonly peerBytesPerSecond: number
  readonly peerBurstBytes: number
  // Tunables
  /** How often `onTick` is called. */
  readonly tickMs: number
  /** Weft: lazy (non-tree) peers each lazy announcement goes to, at most (per topic). */
  readonly lazyFanout: number
  /** Weft: how often new ids are announced to lazy (non-tree) peers; tree neighbours hear every tick. */
  readonly lazyAnnounceIntervalMs: number
  /** Weft: how long after the first IHAVE from a lazy peer a missing message is requested. */
  readonly missingTimeoutMs: number
  /** Weft: how long a request waits before the next announcer is asked. */
  readonly retryTimeoutMs: number
  /** Weft: requests per missing message before it is given up. */
  readonly missingTriesMax: number
  /** Weft: announcers remembered per missing message. */
  readonly announcersMax: number
  /** Weft: the tree root starts a wave this often; every node restates its advertisement at least this often. */
  readonly treeAdvertIntervalMs: number
  /** Weft: a root whose waves stop for this long is dead (and a silent neighbour's advert is stale). */
  readonly treeRootTimeoutMs: number
  /** Weft: deepest tree; an advert at this distance means "no route". */
  readonly treeDepthMax: number
  /** Weft: move to a faster neighbour when the parent brings waves this much later on average. */
  readonly treeSwitchLagMs: number
  /** Weft: IDONTWANT is sent to eager peers for messages at least this large. */
  readonly idontwantBytesMin: number
  /** Weft: a request for a missing id also sends IDONTWANT for it to the parent (its push would be a duplicate). */
  readonly idontwantOnRequest: boolean
  /** Score added per rejected message, per unsolicited duplicate, per rate-limited message. */
  readonly invalidPenalty: number
  readonly duplicatePenalty: number
  readonly rateLimitPenalty: number
  /** Multiplier applied to every score once per second. */
  readonly scoreDecay: number
  /** Below it a peer is pruned from eager push and gets no announcements. */
  readonly pruneThreshold: number
  /** Below it everything from the peer is ignored. */
  readonly graylistThreshold: number
  /** Below it the engine asks for the session to be closed. */
  readonly disconnectThreshold: number
  /** GossipSub: mesh degree and its bounds, lazy gossip degree, heartbeat, gossip window, prune backoff. */
  readonly meshDegree: number
  readonly meshDegreeLow: number
  readonly meshDegreeHigh: number
  readonly gossipDegree: number
  readonly heartbeatMs: number
  readonly gossipWindowMs: number
  readonly pruneBackoffMs: number
}

/** Default tunables (bounds come from `Limits.defaults` through `configFromLimits`). */
export const tunables = {
  tickMs: 150,
  lazyFanout: 8,
  lazyAnnounceIntervalMs: 750,
  missingTimeoutMs: 250,
  retryTimeoutMs: 250,
  missingTriesMax: 6,
  announcersMax: 6,
  treeAdvertIntervalMs: 2000,
  treeRootTimeoutMs: 7000,
  treeDepthMax: 64,
  treeSwitchLagMs: 20,
  idontwantBytesMin: 1024,
  idontwantOnRequest: true,
  invalidPenalty: 10,
  duplicatePenalty: 0.05,
  rateLimitPenalty: 1,
  scoreDecay: 0.9,
  pruneThreshold: -20,
  graylistThreshold: -50,
  disconnectThreshold: -100,
  meshDegree: 6,
  meshDegreeLow: 4,
  meshDegreeHigh: 12,
  gossipDegree: 6,
  heartbeatMs: 1000,
  gossipWindowMs: 3000,
  pruneBackoffMs: 60_000
} as const

/** An engine configuration from a node's limits, with tunables overridden by `overrides`. */
export const configFromLimits = (limits: Limits.Values, overrides: Partial<Config> = {}): Config => ({
  ...tunables,
  messageBytesMax: limits.gossipMessageBytesMax,
  seenEntriesMax: limits.gossipSeenCacheEntriesMax,
  seenWindowMs: Duration.toMillis(limits.gossipSeenWindow),
  payloadWindowMs: Duration.toMillis(limits.gossipPayloadWindow),
  ihaveIdsMax: limits.gossipIhaveIdsMax,
  iwantIdsMax: limits.gossipIwantIdsMax,
  iwantServedPerPeerPerSecond: limits.gossipIwantServedPerPeerPerSecond,
  missingEntriesMax: limits.gossipMissingEntriesMax,
  dontwantIdsPerPeerMax: limits.gossipDontwantIdsPerPeerMax,
  topicsPerPeerMax: limits.gossipTopicsPerPeerMax,
  retainedScoresMax: limits.gossipRetainedScoresMax,
  peerBytesPerSecond: limits.gossipPeerBytesPerSecond,
  peerBurstBytes: limits.gossipPeerBurstBytes,
  ...overrides
})

/**
 * An inbound token bucket in bytes: refilled lazily from the time of the last take, so an idle peer
 * costs no tick work. Returns whether `bytes` could be taken.
 */
export interface Bucket {
  tokens: number
  at: number
}

/** Takes `bytes` from `bucket` at time `now` if it holds them. */
export const take = (bucket: Bucket, now: number, bytes: number, config: Config): boolean => {
  const refill = ((now - bucket.at) * config.peerBytesPerSecond) / 1000
  bucket.tokens = Math.min(config.peerBurstBytes, bucket.tokens + refill)
  bucket.at = now
  if (bucket.tokens < bytes) return false
  bucket.tokens -= bytes
  return true
}

/** Estimated bytes of one Map/Set entry in V8 (hash table slot, key, value, chain). */
export const mapEntryBytes = 40
/** Estimated bytes of one seen-cache entry: its Map entry plus five ring slots. */
export const seenEntryBytes = mapEntryBytes + 5 * 8
/** Estimated fixed bytes of one peer's state object with its empty collections. */
export const peerStateBytes = 320
/** Estimated fixed bytes of one engine with its empty collections. */
export const engineBaseBytes = 1024

/** Shuffles the first `count` places of `items` into a uniform random sample (partial Fisher–Yates). */
export const sample = <T>(items: Array<T>, count: number, prng: Prng): Array<T> => {
  const n = items.length
  const k = Math.min(count, n)
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(prng.nextFloat() * (n - i))
    const swap = items[i]!
    items[i] = items[j]!
    items[j] = swap
  }
  items.length = k
  return items
}
