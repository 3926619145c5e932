/**
 * The link layer: authenticated sessions with peers over one transport endpoint.
 *
 * A session carries **frames** (byte strings up to `frameBytesMax`) to one peer whose node ID the link
 * has authenticated; frames are cut into cells below and reassembled above. Frames are datagrams: the
 * medium may lose, duplicate or reorder them; ordering and retries are the job of the layers above.
 *
 * Invariant 1 lives here: a link holds at most one session per peer, whoever dials, however often,
 * including simultaneous dials from both sides.
 *
 * Implementations: `LinkPlain` (identity-authenticated, unencrypted; the foundation) and, later,
 * the PSK-gated post-quantum secure link. Both satisfy this contract, so nothing above changes.
 */
import { Context, Effect, Stream } from "effect"
import type { NodeId } from "./NodeId.js"
import type { Address } from "./Transport.js"
import type { LinkError } from "./WeftError.js"

/** One authenticated session with one peer. */
export interface Session {
  readonly peer: NodeId
  readonly remote: Address
  /** Whether this side dialed. */
  readonly initiator: boolean
  /** Largest frame `send` accepts. */
  readonly frameBytesMax: number
  /** Largest frame that travels in a single cell (a lost cell then loses only that frame). */
  readonly mtuBytes: number
  /**
   * Sends one frame. On a raw link (LinkPlain, LinkSecure) frames are datagrams: they may be lost,
   * duplicated or reordered, and `options` are ignored. Over reliable streams (`LinkReliable`) frames
   * of one `stream` arrive once and in order, independently of other streams, and `control` frames
   * go ahead of queued bulk. Fails once the session is closed.
   */
  readonly send: (frame: Uint8Array, options?: SendOptions) => Effect.Effect<void, LinkError>
  /**
   * `send` as plain code, on raw links (LinkPlain, LinkSecure) whose send never waits: seals and hands
   * the frame's cells to the transport now and returns the error `send` would fail with, if any. The
   * stream layer sends every packet through it (no Effect per cell). Absent where sending may wait.
   */
  readonly unsafeSend?: (frame: Uint8Array) => LinkError | undefined
  /** Inbound frames; ends when the session closes. One consumer: `frames` or `receive`, not both. */
  readonly frames: Stream.Stream<Uint8Array>
  /**
   * Inbound frames as plain callbacks, in arrival order, for layers above that are plain code (the
   * stream layer): on a raw link `onFrame` runs on the per-cell path, with no queue and no fiber in
   * between, so it must not block or throw. Completes when the session closes.
   */
  readonly receive: (onFrame: (frame: Uint8Array) => void) => Effect.Effect<void>
  /** Completes when the session has closed, for whatever reason. */
  readonly closed: Effect.Effect<void>
  /** Closes the session (idempotent). */
  readonly close: Effect.Effect<void>
}

/** `receive` over a stream of frames, one chunk at a time (for sessions whose frames come from a `Stream`). */
export const receiveFrom = (frames: Stream.Stream<Uint8Array>) => (onFrame: (frame: Uint8Array) => void): Effect.Effect<void> =>
  Stream.runForEachChunk(frames, (chunk) =>
    Effect.sync(() => {
      for (const frame of chunk) onFrame(frame)
    }))

/** How a frame is sent over a session that carries streams. */
export interface SendOptions {
  /** The stream the frame belongs to: frames of one stream keep their order. */
  readonly stream?: number | undefined
  /** `control` frames go ahead of queued `bulk` ones (default bulk). */
  readonly priority?: "control" | "bulk" | undefined
}

/** What `peers` reports of one session. */
export interface SessionInfo {
  readonly peer: NodeId
  readonly remote: Address
  readonly initiator: boolean
  readonly establishedAtMs: number
}

/** Counters a link keeps. */
export interface Stats {
  readonly sessionsOpened: number
  readonly sessionsClosed: number
  readonly handshakesFailed: number
  /** Cells that were not a valid handshake or data cell for a live session. */
  readonly cellsRejected: number
  readonly framesSent: number
  readonly framesReceived: number
  /** Inbound frames dropped because the session inbox was full. */
  readonly framesDroppedInboxFull: number
  /** Partial frames dropped (timeout or too many in progress). */
  readonly reassembliesDropped: number
}

/** The node's link over its transport. */
export class Link extends Context.Tag("@weft/core/Link")<Link, {
  readonly local: NodeId
  readonly address: Address
  /**
   * Returns the session with the peer at `address`, establishing it if needed. Concurrent dials of the
   * same address, and a dial of a peer that is already connected, share one session.
   */
  readonly dial: (address: Address) => Effect.Effect<Session, LinkError>
  /** Every new session, dialed or accepted, exactly once. One consumer (the message layer). */
  readonly sessions: Stream.Stream<Session>
  readonly peers: Effect.Effect<ReadonlyArray<SessionInfo>>
  readonly stats: Effect.Effect<Stats>
}>() {}
