/**
 * The ephemeral package's bounds, with units in their names (see `docs/LIMITS.md`, section "Ephemeral
 * messages"). They are local tuning: two nodes with different values still interoperate, a node with a
 * shorter `ttlMax` or `blockDepth` simply ignores (never penalises) what falls outside its own.
 *
 * The format's own bounds (payload and proof sizes) are fixed by the wire format and live in `Message.ts`.
 */
import { Context, Duration, Layer } from "effect"

/** The bounds of the ephemeral service of one node. */
export interface Values {
  /** Furthest a message's TTL may lie ahead of the node's clock; further is rejected ("TtlTooFar"). */
  readonly ttlMax: Duration.Duration
  /** Recent blocks whose hash prefixes a message may carry; an older or unknown one is ignored ("UnknownBlock"). */
  readonly blockDepth: number
  /** Message ids remembered as seen (until their TTL); past it the oldest is forgotten early and counted. */
  readonly seenEntriesMax: number
  /** Peers whose rejections are counted one by one; past it the least recently seen peer's counts are forgotten. */
  readonly rejectPeersMax: number
  /** Messages the store holds; past it the message with the least work per byte is evicted. */
  readonly storeMessagesMax: number
  /** Bytes the store holds (encoded messages plus `storeEntryOverheadBytes` each); past it, evict as above. */
  readonly storeBytesMax: number
  /** What one stored message costs besides its encoded bytes (maps, heaps, the entry object), in bytes. */
  readonly storeEntryOverheadBytes: number
  /** Interval of the store's expiry sweep (reads never return an expired message in between). */
  readonly sweepInterval: Duration.Duration
  /** Messages one lookup returns at most; the rest are left out (the caller narrows its prefix). */
  readonly lookupResultsMax: number
  /** Interval at which a node refreshes its view of the recent block hashes from the chain. */
  readonly chainRefreshInterval: Duration.Duration
  /** Expected message ids a channel keeps per direction (its receive window); a message beyond it is not recognised. */
  readonly channelWindowMessages: number
  /** Channels one `Channel.Inbox` keeps; past it the least recently used channel is forgotten (and counted). */
  readonly channelsMax: number
  /** Expected ids one inbox RPC may watch (all its channels' windows together; 1024 ids fill half an envelope); more is refused ("TooLarge"). */
  readonly inboxIdsMax: number
  /** Messages buffered per inbox subscriber; past it the oldest is dropped and counted. */
  readonly inboxBufferMessages: number
  /** Inbox subscriptions a node serves at once (each may buffer `inboxBufferMessages`); more are refused ("InboxesFull"). */
  readonly inboxSubscribersMax: number
  /** Proof-of-work attempts between two progress reports (and two chances to interrupt). */
  readonly solveBatchAttempts: number
}

/** The defaults. */
export const defaults: Values = {
  ttlMax: Duration.days(2),
  blockDepth: 64,
  seenEntriesMax: 262_144,
  rejectPeersMax: 1024,
  storeMessagesMax: 65_536,
  storeBytesMax: 128 * 1024 * 1024,
  storeEntryOverheadBytes: 256,
  sweepInterval: Duration.seconds(1),
  lookupResultsMax: 256,
  chainRefreshInterval: Duration.seconds(1),
  channelWindowMessages: 64,
  channelsMax: 256,
  inboxIdsMax: 1024,
  inboxBufferMessages: 1024,
  inboxSubscribersMax: 64,
  solveBatchAttempts: 16_384
}

/** The ephemeral limits as a service. */
export class EphemeralLimits extends Context.Tag("@weft/ephemeral/EphemeralLimits")<EphemeralLimits, Values>() {}

/** Provides the defaults with some limits overridden. */
export const layer = (overrides: Partial<Values> = {}): Layer.Layer<EphemeralLimits> =>
  Layer.succeed(EphemeralLimits, { ...defaults, ...overrides })
