/**
 * Every bound in Weft, in one place, with its unit in its name (TIGER_STYLE: qualifiers last).
 * `docs/LIMITS.md` lists each with what happens when it is hit; keep the two in step.
 *
 * A node reads its limits from the `Limits` service, so a build can tighten or loosen any of them
 * with `Limits.layer({ ... })`; nothing else in the code base holds a numeric bound of its own.
 */
import { Context, Duration, Layer } from "effect"

/** The bounds of one node. */
export interface Values {
  // Transport
  /** Size of every cell a transport moves (IPv6 minimum MTU 1280 less IP and UDP headers). */
  readonly cellBytes: number
  /** Inbound cells queued per endpoint before the transport drops (and counts) new ones. */
  readonly endpointInboxCells: number
  /** Outbound cells a socket may queue (when the kernel's buffer is full) before new ones are dropped and counted. */
  readonly endpointSendQueueCells: number

  // Link (sessions)
  /** Largest frame a session carries after reassembly from cells. */
  readonly frameBytesMax: number
  /** Sessions a node holds at once; a handshake beyond it is refused. */
  readonly peersMax: number
  /** Handshakes in progress at once (both directions); beyond it new ones are dropped and counted. */
  readonly handshakesInFlightMax: number
  /** How long one handshake attempt may take before it is retried. */
  readonly handshakeAttemptTimeout: Duration.Duration
  /** Handshake attempts before a dial fails. */
  readonly handshakeAttemptsMax: number
  /** DATA frames held per handshake that arrive before the dialer's CONFIRM (reordered cells); more are dropped. */
  readonly handshakeEarlyFramesMax: number
  /** Partially reassembled frames kept per peer; the oldest is dropped past it. */
  readonly reassembliesPerPeerMax: number
  /** A partially reassembled frame older than this is dropped. */
  readonly reassemblyTimeout: Duration.Duration
  /** Inbound frames queued per session before new ones are dropped and counted. */
  readonly sessionInboxFrames: number
  /** A session with no inbound traffic for this long is closed. */
  readonly sessionIdleTimeout: Duration.Duration
  /** Interval at which an idle session sends a keepalive. */
  readonly keepaliveInterval: Duration.Duration

  // Link security (LinkSecure)
  /** Cells a session key seals before the session is rekeyed (AES-GCM confidentiality bound, RFC 9001 §6.6). */
  readonly rekeyAfterCells: number
  /** Age of a session's keys after which the session is rekeyed. */
  readonly rekeyAfter: Duration.Duration
  /** How long the previous keys still open cells after a rekey, so cells in flight are not lost. */
  readonly rekeyGracePeriod: Duration.Duration
  /** Packet numbers per key tracked for replay; an older cell is refused and counted. */
  readonly replayWindowCells: number
  /** Lifetime of one cookie secret; a cookie is valid in its epoch and the next, expired after. */
  readonly cookieRotation: Duration.Duration
  /** Responder handshakes in flight from which an INIT must carry a valid cookie before any KEM or certificate work. */
  readonly handshakesBeforeCookie: number
  /** INIT nonces remembered so a replayed INIT costs no KEM work; past it the oldest is evicted and INITs no newer are refused. */
  readonly initReplayCacheEntries: number
  /** An INIT whose timestamp is further than this from the responder's clock is refused and counted. */
  readonly handshakeInitMaxAge: Duration.Duration
  /** Peer certificates remembered as verified, so a reconnecting peer costs no second signature check; least recently used evicted. */
  readonly certificateCacheEntriesMax: number
  /**
   * Static keys of peers met before (by the address dialed, or the node ID that dialed), so a redial
   * encapsulates to them ahead of time; least recently used evicted.
   */
  readonly staticKeysKnownMax: number

  // Messages
  /** Largest encoded envelope (must not exceed frameBytesMax). */
  readonly envelopeBytesMax: number
  /** Message streams tracked per peer for ordering; the least recently used is forgotten past it. */
  readonly streamsPerPeerMax: number
  /** Out-of-order envelopes held per stream while waiting for a gap to fill. */
  readonly reorderWindowMessages: number
  /** How long a gap may stay open before the stream skips past it (and counts the gap). */
  readonly reorderTimeout: Duration.Duration
  /** Calls awaiting a reply, per node; a call beyond it fails with MessageError("CallsFull"). */
  readonly callsInFlightMax: number
  /** Default time a call waits for its reply. */
  readonly callTimeout: Duration.Duration
  /** Replies buffered per streaming call before the oldest is dropped. */
  readonly replyStreamBufferMessages: number
  /** Messages an event channel retains for "everything since N" pulls. */
  readonly eventRetainedMessages: number
  /** Messages buffered per event-channel subscriber before it drops the oldest. */
  readonly eventSubscriberBufferMessages: number
  /** Open channels (conversations) per peer; an open beyond it is refused. */
  readonly channelsPerPeerMax: number
  /** Inbound messages buffered per channel before new ones are dropped and counted. */
  readonly channelInboxMessages: number
  /** Longest envelope tag; an envelope with a longer one is malformed. */
  readonly tagCharsMax: number
  /** Longest actor path in an envelope or an attach; longer is malformed (or ActorError("BadPath")). */
  readonly actorPathCharsMax: number
  /** Tags with an event log (handled or subscribed); past it the least recently used log-only tag is forgotten. */
  readonly eventTagsMax: number
  /** Handler invocations running at once for one peer; beyond it messages are dropped and counted, calls refused. */
  readonly handlersInFlightPerPeerMax: number

  // Actors
  /** Actors a node hosts at once; a spawn beyond it fails. */
  readonly actorsMax: number
  /** Restarts an actor may have within actorRestartWindow before it is stopped for good. */
  readonly actorRestartsMax: number
  /** Window over which actor restarts are counted. */
  readonly actorRestartWindow: Duration.Duration

  // RPC
  /** RPC requests one peer may have running at once. */
  readonly rpcRequestsInFlightPerPeerMax: number
  /** RPC requests queued per peer behind the running ones; beyond it they are dropped and counted. */
  readonly rpcRequestsQueuedPerPeerMax: number

  // Streams (reliable ordered streams over paths)
  /** Stream ids a connection uses, numbered [0, this); a send on another id is a defect, an inbound frame for one drops its packet. */
  readonly streamsPerConnectionMax: number
  /** Largest frame `Connection.send` accepts; an inbound frame announcing a larger one breaks its stream. */
  readonly streamFrameBytesMax: number
  /** Unacknowledged bytes buffered per stream on the sending side; `send` suspends past it. */
  readonly streamSendBufferBytes: number
  /** Unacknowledged bytes buffered per connection on the sending side; `send` suspends past it. */
  readonly connectionSendBufferBytes: number
  /** Receive window of one stream: bytes the peer may send beyond what the application consumed. */
  readonly streamReceiveWindowBytes: number
  /** Receive window of a connection, over all its streams. */
  readonly connectionReceiveWindowBytes: number
  /** Out-of-order segments held per stream; a packet that would need more is dropped unacknowledged. */
  readonly streamReorderSegmentsMax: number
  /** Packets awaiting acknowledgement per connection; the sender waits past it. */
  readonly packetsInFlightMax: number
  /** Packet-number ranges a receiver remembers and reports in one ACK; the oldest are forgotten past it. */
  readonly ackRangesMax: number
  /** Longest a receiver delays an ACK for an ack-eliciting packet. */
  readonly ackDelayMax: Duration.Duration
  /** Retransmission timeout before any RTT sample (RFC 6298). */
  readonly retransmitTimeoutInitial: Duration.Duration
  /** Floor of the computed retransmission timeout. */
  readonly retransmitTimeoutMin: Duration.Duration
  /** Ceiling of the retransmission timeout, exponential backoff included. */
  readonly retransmitTimeoutMax: Duration.Duration

  // Control endpoint
  /** Local tools connected to the control socket at once. */
  readonly controlConnectionsMax: number

  // Peer management
  /** The peer manager dials known addresses while the node has fewer sessions than this. */
  readonly peersLowWatermark: number
  /** The peer manager closes sessions while the node has more than this (at most `peersMax` exist anyway). */
  readonly peersHighWatermark: number
  /** Addresses the peer manager remembers (seeds, peers, peer exchange); the least useful is forgotten past it. */
  readonly peerBookEntriesMax: number
  /** Addresses one peer-exchange reply carries; more are ignored. */
  readonly peerExchangeAddressesMax: number
  /** First wait before an address that failed is dialed again; it doubles per failure. */
  readonly dialBackoffMin: Duration.Duration
  /** Longest wait between dials of an address that keeps failing. */
  readonly dialBackoffMax: Duration.Duration

  // Content store
  /** Largest object the store accepts; a larger put fails with StoreError("TooLarge"). */
  readonly storeObjectBytesMax: number
  /** Bytes of all stored objects; a put beyond it fails with StoreError("Full") (nothing is evicted). */
  readonly storeBytesMax: number
  /** Objects stored; a put beyond it fails with StoreError("Full"). */
  readonly storeObjectsMax: number
  /** Pins one object may hold (pin counts); one more fails with StoreError("Full"). */
  readonly storePinsPerObjectMax: number
  /** Ids in one Have or Want request; a fetch splits into batches of it, a larger inbound request is refused and counted. */
  readonly storeSyncIdsPerRequestMax: number
  /** Object bytes in one Want reply; the rest of the ids are left for the next request (must fit an envelope). */
  readonly storeSyncReplyBytesMax: number
  /** Want requests one node has in flight to one peer, over all its fetches. */
  readonly storeSyncWantsInFlightPerPeerMax: number
  /** Penalty (one per object not matching its id) at which a peer is banned from sync in both directions. */
  readonly storeSyncPenaltyMax: number
  /** Peers in the sync penalty table; past it the least penalized entry is forgotten. */
  readonly storeSyncPenaltyPeersMax: number

  // Gossip
  /** Largest gossip payload; a larger publish fails, a larger inbound message is dropped and counted. */
  readonly gossipMessageBytesMax: number
  /** Longest topic name; a longer one is refused on publish and subscribe, and dropped (counted) on the wire. */
  readonly gossipTopicCharsMax: number
  /** Messages buffered per local subscriber; past it the oldest is dropped and counted. */
  readonly gossipSubscriberBufferMessages: number
  /** Gossip messages queued for one peer; past it the oldest is dropped and counted. */
  readonly gossipPeerOutboxMessages: number
  /** Message ids a node remembers; past it the oldest is forgotten early (and counted). */
  readonly gossipSeenCacheEntriesMax: number
  /** How long a message id is remembered, so no copy of it is delivered twice. */
  readonly gossipSeenWindow: Duration.Duration
  /** How long a message's payload is kept to answer IWANT/GRAFT requests. */
  readonly gossipPayloadWindow: Duration.Duration
  /** Ids in one IHAVE (and announced per topic per tick); more are dropped and counted. */
  readonly gossipIhaveIdsMax: number
  /** Ids in one IWANT or GRAFT request; more are dropped and counted. */
  readonly gossipIwantIdsMax: number
  /** Requested ids served to one peer per second; more are dropped and counted. */
  readonly gossipIwantServedPerPeerPerSecond: number
  /** Announced-but-missing message ids tracked for repair; more are dropped and counted. */
  readonly gossipMissingEntriesMax: number
  /** IDONTWANT ids remembered per peer; the oldest is forgotten past it. */
  readonly gossipDontwantIdsPerPeerMax: number
  /** Topics tracked per peer's subscriptions; more are dropped and counted. */
  readonly gossipTopicsPerPeerMax: number
  /** Scores of disconnected peers retained (so reconnecting does not reset a bad score); oldest evicted. */
  readonly gossipRetainedScoresMax: number
  /** Inbound gossip bytes per second accepted from one peer (token bucket refill). */
  readonly gossipPeerBytesPerSecond: number
  /** Inbound gossip burst accepted from one peer (token bucket size). */
  readonly gossipPeerBurstBytes: number
}

/** The defaults. */
export const defaults: Values = {
  cellBytes: 1232,
  endpointInboxCells: 4096,
  endpointSendQueueCells: 1024,

  frameBytesMax: 64 * 1024,
  peersMax: 256,
  handshakesInFlightMax: 64,
  handshakeAttemptTimeout: Duration.seconds(1),
  handshakeAttemptsMax: 5,
  handshakeEarlyFramesMax: 8,
  reassembliesPerPeerMax: 8,
  reassemblyTimeout: Duration.seconds(5),
  sessionInboxFrames: 1024,
  sessionIdleTimeout: Duration.seconds(30),
  keepaliveInterval: Duration.seconds(5),

  rekeyAfterCells: 8_388_608,
  rekeyAfter: Duration.minutes(2),
  rekeyGracePeriod: Duration.seconds(10),
  replayWindowCells: 4096,
  cookieRotation: Duration.minutes(2),
  handshakesBeforeCookie: 16,
  initReplayCacheEntries: 4096,
  handshakeInitMaxAge: Duration.minutes(2),
  certificateCacheEntriesMax: 1024,
  staticKeysKnownMax: 256,

  envelopeBytesMax: 64 * 1024,
  streamsPerPeerMax: 1024,
  reorderWindowMessages: 64,
  reorderTimeout: Duration.seconds(1),
  callsInFlightMax: 4096,
  callTimeout: Duration.seconds(10),
  replyStreamBufferMessages: 256,
  eventRetainedMessages: 1024,
  eventSubscriberBufferMessages: 256,
  channelsPerPeerMax: 256,
  channelInboxMessages: 256,
  tagCharsMax: 256,
  actorPathCharsMax: 256,
  eventTagsMax: 1024,
  handlersInFlightPerPeerMax: 256,

  actorsMax: 10_000,
  actorRestartsMax: 5,
  actorRestartWindow: Duration.seconds(10),

  rpcRequestsInFlightPerPeerMax: 64,
  rpcRequestsQueuedPerPeerMax: 256,

  streamsPerConnectionMax: 256,
  streamFrameBytesMax: 64 * 1024,
  streamSendBufferBytes: 256 * 1024,
  connectionSendBufferBytes: 1024 * 1024,
  streamReceiveWindowBytes: 256 * 1024,
  connectionReceiveWindowBytes: 1024 * 1024,
  streamReorderSegmentsMax: 1024,
  packetsInFlightMax: 1024,
  ackRangesMax: 32,
  ackDelayMax: Duration.millis(25),
  retransmitTimeoutInitial: Duration.seconds(1),
  retransmitTimeoutMin: Duration.millis(200),
  retransmitTimeoutMax: Duration.seconds(60),

  controlConnectionsMax: 32,

  peersLowWatermark: 8,
  peersHighWatermark: 32,
  peerBookEntriesMax: 1024,
  peerExchangeAddressesMax: 32,
  dialBackoffMin: Duration.seconds(1),
  dialBackoffMax: Duration.minutes(5),

  storeObjectBytesMax: 60 * 1024,
  storeBytesMax: 1024 * 1024 * 1024,
  storeObjectsMax: 1_048_576,
  storePinsPerObjectMax: 65_535,
  storeSyncIdsPerRequestMax: 512,
  storeSyncReplyBytesMax: 60 * 1024,
  storeSyncWantsInFlightPerPeerMax: 4,
  storeSyncPenaltyMax: 8,
  storeSyncPenaltyPeersMax: 1024,

  gossipMessageBytesMax: 60 * 1024,
  gossipTopicCharsMax: 256,
  gossipSubscriberBufferMessages: 1024,
  gossipPeerOutboxMessages: 1024,
  gossipSeenCacheEntriesMax: 131_072,
  gossipSeenWindow: Duration.minutes(2),
  gossipPayloadWindow: Duration.seconds(10),
  gossipIhaveIdsMax: 1024,
  gossipIwantIdsMax: 1024,
  gossipIwantServedPerPeerPerSecond: 4096,
  gossipMissingEntriesMax: 8192,
  gossipDontwantIdsPerPeerMax: 256,
  gossipTopicsPerPeerMax: 64,
  gossipRetainedScoresMax: 1024,
  gossipPeerBytesPerSecond: 16 * 1024 * 1024,
  gossipPeerBurstBytes: 4 * 1024 * 1024
}

/** The node's limits as a service. */
export class Limits extends Context.Tag("@weft/core/Limits")<Limits, Values>() {}

/** Provides the defaults with some limits overridden. */
export const layer = (overrides: Partial<Values> = {}): Layer.Layer<Limits> =>
  Layer.succeed(Limits, { ...defaults, ...overrides })
