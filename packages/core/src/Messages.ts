/**
 * The message layer: ordered streams of tagged envelopes between nodes, and the four ways a node
 * handles them (DESIGN.md, "Messages and calls"), in one model:
 *
 * 1. a default handler for every message of a tag            — `handle(tag, …)`
 * 2. an event channel per tag, a `Stream` the caller consumes — `events(tag, { since })`
 * 3. a specific function correlated by id: a reply to a call  — `call`, `callStream`
 * 4. a handler attached to an object instance: an actor       — `attach(path, …)` (see `Actor`)
 *
 * plus channels (`open`/`serve`): ordered conversations that RPC runs over.
 *
 * Push and pull are one: `events(tag)` pushes new messages; `events(tag, { since: n })` first
 * replays every retained message with a sequence number above `n`, then goes on pushing.
 *
 * A message to the local node takes the same path through the envelope codec as one to a peer.
 */
import type { Duration, Effect, Schema, Scope, Stream } from "effect"
import { Context, Layer } from "effect"
import type { Channel } from "./Channel.js"
import * as internal from "./internal/messages.js"
import type { Link } from "./Link.js"
import type { Limits } from "./Limits.js"
import type { NodeId } from "./NodeId.js"
import type { Address } from "./Transport.js"
import type { ActorError, MessageError } from "./WeftError.js"

/** One delivered message. */
export interface Incoming<A = unknown> {
  readonly peer: NodeId
  readonly tag: string
  readonly body: A
  /** Position in the per-tag event log of this node (for `events(tag, { since })`). */
  readonly seq: number
}

/** Schemas of a handler: the body it accepts and, for calls, the reply it returns. */
export interface HandlerSchemas<A, I, R, RI> {
  readonly body: Schema.Schema<A, I>
  readonly reply?: Schema.Schema<R, RI>
}

/** Counters the message layer keeps (every drop has one). */
export interface Stats {
  readonly envelopesSent: number
  readonly envelopesReceived: number
  /** Frames that did not decode as a valid envelope (malformed, truncated, oversized, wrong version). */
  readonly envelopesMalformed: number
  /** Envelopes dropped because their sequence number was already delivered. */
  readonly duplicatesDropped: number
  /** Gaps skipped after `reorderTimeout` or because the reorder window filled. */
  readonly gapsSkipped: number
  /** Envelopes whose tag has no handler, event channel or channel server. */
  readonly unknownTag: number
  /** Replies to a correlation id that was never issued (or already answered or timed out). */
  readonly unknownCorrelation: number
  /** Envelopes for an actor path with no actor. */
  readonly unknownActor: number
  /** Bodies that failed their handler's schema. */
  readonly bodiesRejected: number
  /** Messages dropped because a bounded buffer was full (channel inbox, subscriber, mailbox). */
  readonly droppedFull: number
  readonly callsInFlight: number
  readonly channelsOpen: number
  /** Handler or actor invocations that died (a defect): logged, counted and, for a call, answered "Remote". */
  readonly handlerDefects: number
  /** Inbound channel opens refused because `channelsPerPeerMax` was reached. */
  readonly channelsRefused: number
  /** Receive-ordering states held, over all peers (each at most `streamsPerPeerMax` per peer). */
  readonly streamsTracked: number
  /** Envelopes held out of order, over all streams (each at most `reorderWindowMessages` per stream). */
  readonly reorderHeld: number
  /** Tags with an event log (at most `eventTagsMax` while any is evictable). */
  readonly eventTags: number
  /** Live `events` subscribers. */
  readonly eventSubscribers: number
  /** Actors attached (at most `actorsMax`). */
  readonly actorsAttached: number
  /** Handler and actor invocations running (at most `handlersInFlightPerPeerMax` per peer). */
  readonly handlersInFlight: number
}

/** What an actor attachment receives: the decoded body, who sent it, and how to answer an ask. */
export interface ActorDelivery {
  readonly peer: NodeId
  readonly body: unknown
  /** Present when the sender asked: completes the sender's `call` with this reply (or error). */
  readonly reply: ((result: { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: MessageError }) => Effect.Effect<void>) | undefined
}

/** The node's message layer. */
export class Messages extends Context.Tag("@weft/core/Messages")<Messages, {
  readonly local: NodeId
  /** Opens (or reuses) the session to the node at `address` and returns its ID. */
  readonly connect: (address: Address) => Effect.Effect<NodeId, MessageError>
  /** Peers with a live session. */
  readonly peers: Effect.Effect<ReadonlyArray<NodeId>>

  /** Sends one message (fire and forget). */
  readonly send: (peer: NodeId, tag: string, body: unknown) => Effect.Effect<void, MessageError>
  /** Sends a call and waits for its one reply (`callTimeout` unless given). */
  readonly call: (peer: NodeId, tag: string, body: unknown, options?: { readonly timeout?: Duration.DurationInput | undefined }) => Effect.Effect<unknown, MessageError>
  /** Sends a call and streams its replies until the handler's stream ends. */
  readonly callStream: (peer: NodeId, tag: string, body: unknown, options?: { readonly timeout?: Duration.DurationInput | undefined }) => Stream.Stream<unknown, MessageError>

  /**
   * Installs the default handler of a tag for as long as the scope lives. The body is decoded with
   * `schemas.body` (a mismatch is counted and, for a call, answered with `MessageError("Schema")`).
   * For a call, the handler's success is the reply, encoded with `schemas.reply`.
   */
  readonly handle: <A, I, R, RI>(
    tag: string,
    schemas: HandlerSchemas<A, I, R, RI>,
    handler: (message: Incoming<A>) => Effect.Effect<R, MessageError>
  ) => Effect.Effect<void, never, Scope.Scope>
  /** Like `handle`, for calls answered with a stream of replies (`callStream`). */
  readonly handleStream: <A, I, R, RI>(
    tag: string,
    schemas: HandlerSchemas<A, I, R, RI>,
    handler: (message: Incoming<A>) => Stream.Stream<R, MessageError>
  ) => Effect.Effect<void, never, Scope.Scope>
  /** The event channel of a tag: pushes every message of the tag; with `since`, replays first. */
  readonly events: (tag: string, options?: { readonly since?: number | undefined }) => Stream.Stream<Incoming, MessageError>

  /** Attaches an actor at `path` (no leading slash); messages addressed `localId/path` reach `deliver`. */
  readonly attach: (path: string, deliver: (delivery: ActorDelivery) => Effect.Effect<void, MessageError>) => Effect.Effect<void, ActorError, Scope.Scope>
  /** Sends to an actor at `peer/path` (tell). */
  readonly tell: (peer: NodeId, path: string, body: unknown) => Effect.Effect<void, MessageError>
  /** Asks an actor at `peer/path` and waits for its reply. */
  readonly ask: (peer: NodeId, path: string, body: unknown, options?: { readonly timeout?: Duration.DurationInput | undefined }) => Effect.Effect<unknown, MessageError>

  /** Opens a channel to `peer` for `tag`; it closes with the scope. */
  readonly open: (peer: NodeId, tag: string) => Effect.Effect<Channel, MessageError, Scope.Scope>
  /** Accepts channels for `tag` for as long as the scope lives; each runs `onChannel` in its own fiber. */
  readonly serve: (tag: string, onChannel: (channel: Channel) => Effect.Effect<void>) => Effect.Effect<void, never, Scope.Scope>

  readonly stats: Effect.Effect<Stats>
}>() {}

/**
 * Builds the message layer over the node's `Link`, for as long as the scope lives: it becomes the one
 * consumer of `Link.sessions`, and closing the scope stops its fibers and fails what is in flight.
 * Bounds come from `Limits` (messages section, plus `actorsMax`).
 */
export const make: Effect.Effect<Context.Tag.Service<Messages>, never, Link | Limits | Scope.Scope> = internal.make

/** The message layer as a layer. */
export const layer: Layer.Layer<Messages, never, Link | Limits> = Layer.scoped(Messages, make)
