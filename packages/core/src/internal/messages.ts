/**
 * The message layer's engine (see `Messages.ts` for the contract).
 *
 * The per-envelope path is plain synchronous code: a session's reader fiber decodes each frame at the
 * edge, the peer's reorder table puts it in order, and `dispatch` routes it by kind into a Deferred, a
 * Mailbox or a tag's log. Only handler and actor invocations get a fiber of their own, forked into the
 * layer's FiberSet so that they never outlive it and never take it down.
 *
 * Stream ids: 0 carries messages, calls, asks and every reply. A channel opened by a node uses an even id
 * `2n` (n counts from 1 per session) for what the opener sends and `2n + 1` for what the acceptor sends, so
 * both ends allocate ids without talking and a loopback channel's two directions never collide.
 */
import type { Context, Deferred as DeferredType, Scope } from "effect"
import { Cause, Chunk, Deferred, Duration, Effect, Either, Exit, FiberId, FiberRef, FiberSet, Mailbox, Option, Runtime, Schedule, Schema, Stream } from "effect"
import type { Channel } from "../Channel.js"
import * as Envelope from "../Envelope.js"
import { Link } from "../Link.js"
import type { Session } from "../Link.js"
import { Limits } from "../Limits.js"
import type { ActorDelivery, HandlerSchemas, Incoming, Messages, Stats } from "../Messages.js"
import type { NodeId } from "../NodeId.js"
import * as NodeIdModule from "../NodeId.js"
import type { Address } from "../Transport.js"
import { ActorError, MessageError } from "../WeftError.js"
import * as Deadlines from "./deadlines.js"
import { ReorderTable } from "./messagesReorder.js"
import { TagTable } from "./messagesTags.js"
import type { TagEntry } from "./messagesTags.js"

type Service = Context.Tag.Service<typeof Messages>
type Reason = MessageError["reason"]
type Outgoing = Omit<Envelope.Envelope, "seq">

const Kind = Envelope.Kind
const streamIdMax = 0xffff_ffff
/** Longest remote error detail kept: the detail is the peer's text, bounded before it is stored. */
const remoteDetailCharsMax = 1000

/** What the layer knows of one peer (one session), or of the local node for loopback. */
interface PeerState {
  readonly peer: NodeId
  /** Undefined for the local node: its envelopes loop back through the codec in-process. */
  readonly session: Session | undefined
  readonly reorder: ReorderTable
  readonly deliver: (envelope: Envelope.Envelope) => void
  readonly sendSeq: Map<number, number>
  /** Open channels by the stream they receive on. */
  readonly channels: Map<number, ChannelState>
  nextChannelId: number
  handlersInFlight: number
  closed: boolean
}

interface ChannelState {
  readonly state: PeerState
  readonly receiveStream: number
  readonly sendStream: number
  readonly inbox: Mailbox.Mailbox<unknown, MessageError>
  open: boolean
}

type Pending =
  | { readonly state: PeerState; readonly many: false; readonly deferred: DeferredType.Deferred<unknown, MessageError> }
  | { readonly state: PeerState; readonly many: true; readonly replies: Mailbox.Mailbox<unknown, MessageError> }

/** A default handler, split so that a rejected body costs no fiber: `prepare` runs inline, `run` forked. */
interface Handler {
  readonly prepare: (body: unknown) => Either.Either<unknown, unknown>
  readonly run: (state: PeerState, envelope: Envelope.Envelope, body: unknown, seq: number) => Effect.Effect<void>
}

type Counters = {
  -readonly [K in Exclude<keyof Stats, "callsInFlight" | "channelsOpen" | "streamsTracked" | "reorderHeld" | "eventTags" | "eventSubscribers" | "actorsAttached" | "handlersInFlight">]: number
}

const messageError = (reason: Reason, detail?: string): MessageError => new MessageError({ reason, detail })

const ErrorBody = Schema.Tuple(MessageError.fields.reason, Schema.NullOr(Schema.String))
const decodeErrorBodyEither = Schema.decodeUnknownEither(ErrorBody)

/** An error as it travels in the body of an `error` or refusing `channel-close` envelope. */
const errorBody = (error: MessageError): readonly [Reason, string | null] => [error.reason, error.detail ?? null]

/** The peer's error, bounded; anything unreadable becomes "Remote". */
const decodeErrorBody = (body: unknown): MessageError =>
  Either.match(decodeErrorBodyEither(body), {
    onLeft: () => messageError("Remote", "unreadable error reply"),
    onRight: ([reason, detail]) => messageError(reason, detail === null ? undefined : detail.slice(0, remoteDetailCharsMax))
  })

const linkFailure = (error: { readonly reason: string; readonly detail?: string | undefined }): MessageError =>
  messageError(error.reason === "FrameTooLarge" ? "TooLarge" : "Closed", error.detail ?? error.reason)

/** Builds the message layer over the node's link. */
export const make: Effect.Effect<Service, never, Link | Limits | Scope.Scope> = Effect.gen(function*() {
  const link = yield* Link
  const limits = yield* Limits
  const clock = yield* Effect.clock
  const runFork = yield* FiberSet.makeRuntime<never>()
  const runSync = Runtime.runSync(yield* Effect.runtime<never>())
  // A Mailbox wakes its readers on the scheduler of the fiber that made it, and runSync runs on a
  // throwaway synchronous scheduler: inboxes made on the dispatch path must use the layer's own
  // (the controlled one in a deterministic simulation, or their wake-ups would escape it).
  const scheduler = yield* FiberRef.get(FiberRef.currentScheduler)
  const decode = Envelope.decoder(limits)
  const reorderTimeoutMs = Duration.toMillis(limits.reorderTimeout)

  const counters: Counters = {
    envelopesSent: 0, envelopesReceived: 0, envelopesMalformed: 0, duplicatesDropped: 0, gapsSkipped: 0,
    unknownTag: 0, unknownCorrelation: 0, unknownActor: 0, bodiesRejected: 0, droppedFull: 0,
    handlerDefects: 0, channelsRefused: 0
  }
  const peers = new Map<NodeId, PeerState>()
  const adopted = new WeakSet<Session>()
  const pending = new Map<number, Pending>()
  let nextCorr = 1
  // One sweeping fiber times out every call, ask and idle reply stream (no timer race per request).
  const deadlines = Deadlines.make<number>({ clock, fork: (effect) => runFork(effect), expire: (corr) => Effect.sync(() => expire(corr)) })
  const tags = new TagTable<Handler>(limits.eventTagsMax, limits.eventRetainedMessages)
  const servers = new Map<string, (channel: ChannelState) => void>()
  const actors = new Map<string, (delivery: ActorDelivery) => Effect.Effect<void, MessageError>>()

  const newPeer = (peer: NodeId, session: Session | undefined): PeerState => {
    const state: PeerState = {
      peer, session,
      reorder: new ReorderTable(limits.reorderWindowMessages, limits.streamsPerPeerMax, counters),
      deliver: (envelope) => dispatch(state, envelope),
      sendSeq: new Map(), channels: new Map(), nextChannelId: 1, handlersInFlight: 0, closed: false
    }
    return state
  }
  const localState = newPeer(link.local, undefined)

  const stateOf = (peer: NodeId): Effect.Effect<PeerState, MessageError> => {
    const state = peer === link.local ? localState : peers.get(peer)
    return state === undefined
      ? Effect.fail(messageError("Unreachable", `no session with ${NodeIdModule.short(peer)}`))
      : Effect.succeed(state)
  }

  const background = (effect: Effect.Effect<void, unknown>): void => {
    runFork(Effect.ignore(effect))
  }

  // ---- sending ----------------------------------------------------------------------------------

  /** Numbers, encodes and sends one envelope; the sequence number is only spent once the envelope fits. */
  const transmit = (state: PeerState, out: Outgoing): Effect.Effect<void, MessageError> =>
    Effect.suspend(() => {
      if (state.closed) return Effect.fail(messageError("Closed", "session closed"))
      const seq = state.sendSeq.get(out.stream) ?? 0
      let bytes: Uint8Array
      try {
        bytes = Envelope.encode({ ...out, seq })
      } catch (cause) {
        return Effect.fail(messageError("Schema", `body cannot be encoded: ${String(cause).slice(0, 200)}`))
      }
      if (bytes.length > limits.envelopeBytesMax) {
        return Effect.fail(messageError("TooLarge", `${bytes.length} bytes, at most ${limits.envelopeBytesMax}`))
      }
      state.sendSeq.set(out.stream, seq + 1)
      counters.envelopesSent++
      if (state.session === undefined) {
        receiveFrame(state, bytes)
        return Effect.void
      }
      // Over reliable streams, each message stream keeps its order without waiting on the others.
      return Effect.mapError(state.session.send(bytes, { stream: out.stream }), linkFailure)
    })

  const outgoing = (kind: Envelope.Kind, stream: number, tag: string, corr: number | undefined, to: string | undefined, body: unknown): Outgoing =>
    ({ kind, stream, tag, corr, to, body })

  const sendError = (state: PeerState, request: Envelope.Envelope, error: MessageError): Effect.Effect<void> =>
    Effect.ignore(transmit(state, outgoing(Kind.error, 0, "", request.corr, undefined, errorBody(error))))

  /** Answers a call or ask; a reply that does not fit is answered with the error instead. */
  const sendReply = (state: PeerState, request: Envelope.Envelope, kind: Envelope.Kind, value: unknown): Effect.Effect<void, MessageError> =>
    transmit(state, outgoing(kind, 0, "", request.corr, undefined, value))

  const answer = (state: PeerState, request: Envelope.Envelope, encoded: Either.Either<unknown, unknown>): Effect.Effect<void> =>
    Either.isLeft(encoded)
      ? sendError(state, request, messageError("Schema", "the handler's reply did not match its schema"))
      : sendReply(state, request, Kind.reply, encoded.right).pipe(Effect.catchAll((error) => sendError(state, request, error)))

  const checkTag = (tag: string): Effect.Effect<void, MessageError> =>
    tag.length > limits.tagCharsMax
      ? Effect.fail(messageError("TooLarge", `tag longer than ${limits.tagCharsMax} characters`))
      : Effect.void

  const validPath = (path: string): boolean =>
    path.length > 0 && path.length <= limits.actorPathCharsMax && !path.startsWith("/")

  // ---- receiving --------------------------------------------------------------------------------

  /** The edge: one untrusted frame in, at most a counter out if it is not a valid envelope. */
  const receiveFrame = (state: PeerState, bytes: Uint8Array): void => {
    const decoded = decode(bytes)
    if (Either.isLeft(decoded)) {
      counters.envelopesMalformed++
      return
    }
    counters.envelopesReceived++
    state.reorder.accept(decoded.right, clock.unsafeCurrentTimeMillis(), state.deliver)
  }

  const dispatch = (state: PeerState, envelope: Envelope.Envelope): void => {
    switch (envelope.kind) {
      case Kind.message:
      case Kind.call:
      case Kind.callStream:
        return onTagged(state, envelope)
      case Kind.reply:
      case Kind.replyNext:
      case Kind.replyEnd:
      case Kind.error:
        return onReply(state, envelope)
      case Kind.channelOpen:
        return onChannelOpen(state, envelope)
      case Kind.channelData:
      case Kind.channelClose:
        return onChannelTraffic(state, envelope)
      case Kind.tell:
      case Kind.ask:
        return onActor(state, envelope)
    }
  }

  const pickHandler = (entry: TagEntry<Handler>, kind: Envelope.Kind): Handler | undefined =>
    kind === Kind.callStream ? entry.streamHandler ?? entry.handler : entry.handler ?? entry.streamHandler

  /** Takes a handler slot for one invocation, or refuses (and counts) when the peer has too many running. */
  const admit = (state: PeerState): boolean => {
    if (state.handlersInFlight >= limits.handlersInFlightPerPeerMax) {
      counters.droppedFull++
      return false
    }
    state.handlersInFlight++
    return true
  }

  const runAdmitted = (state: PeerState, effect: Effect.Effect<void>): void => {
    runFork(Effect.ensuring(effect, Effect.sync(() => state.handlersInFlight--)))
  }

  const onTagged = (state: PeerState, envelope: Envelope.Envelope): void => {
    const isCall = envelope.kind !== Kind.message
    const entry = tags.lookup(envelope.tag)
    if (entry === undefined) {
      counters.unknownTag++
      if (isCall) background(sendError(state, envelope, messageError("NoHandler", `no handler for tag ${envelope.tag}`)))
      return
    }
    const { dropped, message } = entry.append(state.peer, envelope.body)
    counters.droppedFull += dropped
    const handler = pickHandler(entry, envelope.kind)
    if (handler === undefined) {
      if (isCall) background(sendError(state, envelope, messageError("NoHandler", `no handler for tag ${envelope.tag}`)))
      return
    }
    const body = handler.prepare(envelope.body)
    if (Either.isLeft(body)) {
      counters.bodiesRejected++
      if (isCall) background(sendError(state, envelope, messageError("Schema", `body does not match the schema of ${envelope.tag}`)))
      return
    }
    if (!admit(state)) {
      if (isCall) background(sendError(state, envelope, messageError("CallsFull", "the peer's handlers are busy")))
      return
    }
    runAdmitted(state, handler.run(state, envelope, body.right, message.seq))
  }

  /** What a handler's failure turns into: its error as the reply; a defect logged, counted and answered. */
  const onHandlerFailure = (state: PeerState, request: Envelope.Envelope, cause: Cause.Cause<MessageError>): Effect.Effect<void> => {
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    const expectsReply = request.kind !== Kind.message && request.kind !== Kind.tell
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      if (failure.value.reason === "MailboxFull") counters.droppedFull++
      return expectsReply ? sendError(state, request, failure.value) : Effect.void
    }
    counters.handlerDefects++
    return Effect.logError("message handler defect", cause).pipe(
      Effect.annotateLogs({ component: "Messages", peer: NodeIdModule.short(state.peer), tag: request.tag }),
      Effect.zipRight(expectsReply ? sendError(state, request, messageError("Remote", "the handler failed unexpectedly")) : Effect.void)
    )
  }

  const settle = (corr: number, entry: Pending, exit: Exit.Exit<unknown, MessageError>): void => {
    pending.delete(corr)
    deadlines.delete(corr)
    if (entry.many) entry.replies.unsafeDone(Exit.asVoid(exit))
    else Deferred.unsafeDone(entry.deferred, exit)
  }

  /** A deadline passed: a call or ask fails; a reply stream fails unless a reply is waiting to be read. */
  const expire = (corr: number): void => {
    const entry = pending.get(corr)
    if (entry === undefined) return
    if (entry.many) {
      const size = entry.replies.unsafeSize()
      if (Option.isSome(size) && size.value > 0) return
    }
    settle(corr, entry, Exit.fail(messageError("Timeout", "no reply in time")))
  }

  const onReply = (state: PeerState, envelope: Envelope.Envelope): void => {
    const corr = envelope.corr ?? -1
    const entry = pending.get(corr)
    // Only the peer that was asked may answer: a correlation id is not a secret.
    if (entry === undefined || entry.state !== state) {
      counters.unknownCorrelation++
      return
    }
    if (envelope.kind === Kind.error) return settle(corr, entry, Exit.fail(decodeErrorBody(envelope.body)))
    if (!entry.many) {
      if (envelope.kind === Kind.reply) settle(corr, entry, Exit.succeed(envelope.body))
      else counters.unknownCorrelation++
      return
    }
    if (envelope.kind !== Kind.replyEnd) offerReply(entry.replies, envelope.body)
    if (envelope.kind !== Kind.replyNext) settle(corr, entry, Exit.void)
  }

  const offerReply = (replies: Mailbox.Mailbox<unknown, MessageError>, body: unknown): void => {
    const size = replies.unsafeSize()
    // The reply buffer slides: count the oldest it is about to drop.
    if (size._tag === "Some" && size.value >= limits.replyStreamBufferMessages) counters.droppedFull++
    replies.unsafeOffer(body)
  }

  // ---- actors -----------------------------------------------------------------------------------

  const onActor = (state: PeerState, envelope: Envelope.Envelope): void => {
    const isAsk = envelope.kind === Kind.ask
    const deliver = actors.get(envelope.to ?? "")
    if (deliver === undefined) {
      counters.unknownActor++
      if (isAsk) background(sendError(state, envelope, messageError("NoHandler", `no actor at ${envelope.to}`)))
      return
    }
    if (!admit(state)) {
      if (isAsk) background(sendError(state, envelope, messageError("MailboxFull", "the peer's handlers are busy")))
      return
    }
    const reply = isAsk ? replyOnce(state, envelope) : undefined
    runAdmitted(state, deliver({ peer: state.peer, body: envelope.body, reply }).pipe(
      Effect.catchAllCause((cause) => onHandlerFailure(state, envelope, cause))
    ))
  }

  const replyOnce = (state: PeerState, request: Envelope.Envelope): NonNullable<ActorDelivery["reply"]> => {
    let replied = false
    return (result) =>
      Effect.suspend(() => {
        if (replied) return Effect.void
        replied = true
        return result.ok ? answer(state, request, Either.right(result.value)) : sendError(state, request, result.error)
      })
  }

  // ---- channels ---------------------------------------------------------------------------------

  const newChannel = (state: PeerState, receiveStream: number, sendStream: number, inbox: Mailbox.Mailbox<unknown, MessageError>): ChannelState => {
    const channel: ChannelState = { state, receiveStream, sendStream, inbox, open: true }
    state.channels.set(receiveStream, channel)
    return channel
  }

  const channelFace = (channel: ChannelState): Channel => ({
    peer: channel.state.peer,
    stream: channel.sendStream,
    send: (body) =>
      Effect.suspend(() =>
        channel.open
          ? transmit(channel.state, outgoing(Kind.channelData, channel.sendStream, "", undefined, undefined, body))
          : Effect.fail(messageError("Closed", "channel closed"))
      ),
    receive: Mailbox.toStream(channel.inbox),
    close: closeChannel(channel)
  })

  /** Unhooks a channel locally: no more sends, its receive ends with `exit`. */
  const detachChannel = (channel: ChannelState, exit: Exit.Exit<void, MessageError>): void => {
    channel.open = false
    if (channel.state.channels.get(channel.receiveStream) === channel) channel.state.channels.delete(channel.receiveStream)
    channel.state.reorder.forget(channel.receiveStream)
    channel.inbox.unsafeDone(exit)
  }

  const closeChannel = (channel: ChannelState): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (!channel.open) return Effect.void
      detachChannel(channel, Exit.void)
      return transmit(channel.state, outgoing(Kind.channelClose, channel.sendStream, "", undefined, undefined, null)).pipe(
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => channel.state.sendSeq.delete(channel.sendStream)))
      )
    })

  const refuseChannel = (state: PeerState, sendStream: number, error: MessageError): void =>
    background(transmit(state, outgoing(Kind.channelClose, sendStream, "", undefined, undefined, errorBody(error))).pipe(
      Effect.ensuring(Effect.sync(() => state.sendSeq.delete(sendStream)))
    ))

  const onChannelOpen = (state: PeerState, envelope: Envelope.Envelope): void => {
    const stream = envelope.stream
    // The opener sends on an even id > 0; anything else is not a channel this side can answer.
    if (stream === 0 || stream % 2 === 1 || stream >= streamIdMax || state.channels.has(stream)) {
      counters.unknownTag++
      return
    }
    const serve = servers.get(envelope.tag)
    if (serve === undefined) {
      counters.unknownTag++
      return refuseChannel(state, stream + 1, messageError("NoHandler", `no channel server for tag ${envelope.tag}`))
    }
    if (state.channels.size >= limits.channelsPerPeerMax) {
      counters.channelsRefused++
      return refuseChannel(state, stream + 1, messageError("ChannelsFull", `at most ${limits.channelsPerPeerMax} channels`))
    }
    const inbox = runSync(Effect.withScheduler(
      Mailbox.make<unknown, MessageError>({ capacity: limits.channelInboxMessages, strategy: "dropping" }),
      scheduler
    ))
    serve(newChannel(state, stream, stream + 1, inbox))
  }

  const onChannelTraffic = (state: PeerState, envelope: Envelope.Envelope): void => {
    const channel = state.channels.get(envelope.stream)
    if (channel === undefined) {
      counters.unknownTag++
      return
    }
    if (envelope.kind === Kind.channelData) {
      if (!channel.inbox.unsafeOffer(envelope.body)) counters.droppedFull++
      return
    }
    detachChannel(channel, envelope.body === null ? Exit.void : Exit.fail(decodeErrorBody(envelope.body)))
    state.sendSeq.delete(channel.sendStream)
  }

  const openChannel = (peer: NodeId, tag: string): Effect.Effect<Channel, MessageError> =>
    Effect.gen(function*() {
      const state = yield* stateOf(peer)
      yield* checkTag(tag)
      if (state.channels.size >= limits.channelsPerPeerMax) {
        return yield* Effect.fail(messageError("ChannelsFull", `at most ${limits.channelsPerPeerMax} channels`))
      }
      const sendStream = state.nextChannelId * 2
      if (sendStream >= streamIdMax) return yield* Effect.fail(messageError("ChannelsFull", "stream ids exhausted"))
      state.nextChannelId++
      const inbox = yield* Mailbox.make<unknown, MessageError>({ capacity: limits.channelInboxMessages, strategy: "dropping" })
      const channel = newChannel(state, sendStream + 1, sendStream, inbox)
      yield* transmit(state, outgoing(Kind.channelOpen, sendStream, tag, undefined, undefined, null)).pipe(
        Effect.tapError(() => Effect.sync(() => detachChannel(channel, Exit.void)))
      )
      return channelFace(channel)
    })

  // ---- sessions ---------------------------------------------------------------------------------

  const closePeer = (state: PeerState): void => {
    if (state.closed) return
    state.closed = true
    if (peers.get(state.peer) === state) peers.delete(state.peer)
    const lost = messageError("Closed", "session lost")
    for (const channel of Array.from(state.channels.values())) detachChannel(channel, Exit.fail(lost))
    for (const [corr, entry] of Array.from(pending)) if (entry.state === state) settle(corr, entry, Exit.fail(lost))
    state.reorder.clear()
    state.sendSeq.clear()
  }

  /** Takes over a session (from `Link.sessions` or a dial), once; a newer session replaces an older one. */
  const adopt = (session: Session): Effect.Effect<void> =>
    Effect.sync(() => {
      if (adopted.has(session)) return
      adopted.add(session)
      const previous = peers.get(session.peer)
      if (previous !== undefined) closePeer(previous)
      const state = newPeer(session.peer, session)
      peers.set(session.peer, state)
      runFork(session.receive((frame) => receiveFrame(state, frame)).pipe(
        Effect.ensuring(Effect.sync(() => closePeer(state)))
      ))
    })

  const sweep = (): void => {
    const now = clock.unsafeCurrentTimeMillis()
    localState.reorder.skipStale(now, reorderTimeoutMs, localState.deliver)
    for (const state of peers.values()) state.reorder.skipStale(now, reorderTimeoutMs, state.deliver)
  }

  yield* Effect.forkScoped(Stream.runForEach(link.sessions, adopt))
  yield* Effect.forkScoped(Effect.repeat(
    Effect.sync(sweep),
    Schedule.spaced(Duration.millis(Math.max(1, Math.floor(reorderTimeoutMs / 4))))
  ))

  // ---- the service ------------------------------------------------------------------------------

  const forget = (corr: number, entry: Pending): void => {
    deadlines.delete(corr)
    if (pending.get(corr) === entry) pending.delete(corr)
  }

  const request = (peer: NodeId, out: Outgoing, timeout: Duration.DurationInput | undefined): Effect.Effect<unknown, MessageError> =>
    Effect.flatMap(stateOf(peer), (state) => {
      if (pending.size >= limits.callsInFlightMax) return Effect.fail(messageError("CallsFull", `at most ${limits.callsInFlightMax} calls`))
      const corr = nextCorr++
      const entry: Pending = { state, many: false, deferred: Deferred.unsafeMake<unknown, MessageError>(FiberId.none) }
      pending.set(corr, entry)
      deadlines.set(corr, Duration.toMillis(timeout ?? limits.callTimeout))
      return transmit(state, { ...out, corr }).pipe(
        Effect.zipRight(Deferred.await(entry.deferred)),
        Effect.ensuring(Effect.sync(() => forget(corr, entry)))
      )
    })

  /**
   * The replies of a streaming call. Its idle timeout runs while the reader waits on an empty buffer,
   * as a timeout on each pull would: a deadline is set when a pull finds nothing, cleared when it returns.
   */
  const replyStream = (corr: number, replies: Mailbox.Mailbox<unknown, MessageError>, idleMillis: number): Stream.Stream<unknown, MessageError> => {
    const takeAll = replies.takeAll
    const disarm = Effect.sync(() => deadlines.delete(corr))
    const pull = Effect.suspend(() => {
      const size = replies.unsafeSize()
      if (Option.isNone(size) || size.value > 0) return takeAll
      deadlines.set(corr, idleMillis)
      return Effect.ensuring(takeAll, disarm)
    })
    return Stream.repeatEffectChunkOption(Effect.matchEffect(pull, {
      onFailure: (error) => Effect.fail(Option.some(error)),
      onSuccess: ([chunk, done]) => done && Chunk.isEmpty(chunk) ? Effect.fail(Option.none()) : Effect.succeed(chunk)
    }))
  }

  const callStream: Service["callStream"] = (peer, tag, body, options) =>
    Stream.unwrapScoped(Effect.gen(function*() {
      yield* checkTag(tag)
      const state = yield* stateOf(peer)
      if (pending.size >= limits.callsInFlightMax) return yield* Effect.fail(messageError("CallsFull", `at most ${limits.callsInFlightMax} calls`))
      const replies = yield* Mailbox.make<unknown, MessageError>({ capacity: limits.replyStreamBufferMessages, strategy: "sliding" })
      const corr = nextCorr++
      const entry: Pending = { state, many: true, replies }
      pending.set(corr, entry)
      yield* Effect.addFinalizer(() => Effect.sync(() => forget(corr, entry)))
      yield* transmit(state, outgoing(Kind.callStream, 0, tag, corr, undefined, body))
      return replyStream(corr, replies, Duration.toMillis(options?.timeout ?? limits.callTimeout))
    }))

  const makeHandler = <A, I, R, RI>(
    tag: string,
    schemas: HandlerSchemas<A, I, R, RI>,
    reply: (state: PeerState, request: Envelope.Envelope, message: Incoming<A>) => Effect.Effect<void, MessageError>
  ): Handler => ({
    prepare: Schema.decodeUnknownEither(schemas.body),
    run: (state, request, body, seq) =>
      reply(state, request, { peer: state.peer, tag, body: body as A, seq }).pipe(
        Effect.catchAllCause((cause) => onHandlerFailure(state, request, cause))
      )
  })

  const install = (tag: string, slot: "handler" | "streamHandler", handler: Handler): Effect.Effect<void, never, Scope.Scope> =>
    Effect.asVoid(Effect.acquireRelease(
      Effect.sync(() => {
        const entry = tags.obtain(tag)
        entry[slot] = handler
        return entry
      }),
      (entry) => Effect.sync(() => {
        if (entry[slot] === handler) entry[slot] = undefined
      })
    ))

  const encoderOf = <R, RI>(schema: Schema.Schema<R, RI> | undefined): (value: R) => Either.Either<unknown, unknown> =>
    schema === undefined ? Either.right : Schema.encodeEither(schema)

  const handle: Service["handle"] = (tag, schemas, handler) => {
    const encode = encoderOf(schemas.reply)
    return install(tag, "handler", makeHandler(tag, schemas, (state, request, message) =>
      Effect.flatMap(handler(message), (value) =>
        request.kind === Kind.message ? Effect.void : answer(state, request, encode(value))
      )))
  }

  const handleStream: Service["handleStream"] = (tag, schemas, handler) => {
    const encode = encoderOf(schemas.reply)
    const encodeOrFail = (value: Parameters<typeof encode>[0]) =>
      Either.mapLeft(encode(value), () => messageError("Schema", "the handler's reply did not match its schema"))
    return install(tag, "streamHandler", makeHandler(tag, schemas, (state, request, message) => {
      const replies = handler(message)
      if (request.kind === Kind.message) return Stream.runDrain(replies)
      if (request.kind === Kind.call) {
        // A plain call takes the first reply of a streaming handler.
        return Effect.flatMap(Stream.runHead(replies), Option.match({
          onNone: () => sendError(state, request, messageError("Remote", "the handler produced no reply")),
          onSome: (value) => answer(state, request, encode(value))
        }))
      }
      return replies.pipe(
        Stream.runForEach((value) => Effect.flatMap(encodeOrFail(value), (encoded) => sendReply(state, request, Kind.replyNext, encoded))),
        Effect.zipRight(sendReply(state, request, Kind.replyEnd, null))
      )
    }))
  }

  const events: Service["events"] = (tag, options) =>
    Stream.unwrapScoped(Effect.gen(function*() {
      const mailbox = yield* Mailbox.make<Incoming>({ capacity: limits.eventSubscriberBufferMessages, strategy: "sliding" })
      const subscriber = { mailbox, capacity: limits.eventSubscriberBufferMessages }
      const since = options?.since
      // Subscribing and reading the replay happen in one synchronous step, so nothing falls between them.
      const replay = yield* Effect.acquireRelease(
        Effect.suspend(() => {
          const entry = tags.obtainWithin(tag)
          if (entry === undefined) return Effect.fail(messageError("ChannelsFull", `at most ${limits.eventTagsMax} event tags`))
          entry.subscribers.add(subscriber)
          return Effect.succeed({ entry, messages: since === undefined ? [] : entry.log.since(since) })
        }),
        ({ entry }) => Effect.sync(() => entry.subscribers.delete(subscriber))
      )
      const last = replay.messages.at(-1)?.seq ?? since ?? Number.NEGATIVE_INFINITY
      return Stream.concat(
        Stream.fromIterable(replay.messages),
        Stream.filter(Mailbox.toStream(mailbox), (message) => message.seq > last)
      )
    }))

  const attach: Service["attach"] = (path, deliver) =>
    Effect.asVoid(Effect.acquireRelease(
      Effect.suspend(() => {
        if (!validPath(path)) return Effect.fail(new ActorError({ reason: "BadPath", detail: `invalid actor path ${JSON.stringify(path.slice(0, 80))}` }))
        if (actors.has(path)) return Effect.fail(new ActorError({ reason: "Exists", detail: path }))
        if (actors.size >= limits.actorsMax) return Effect.fail(new ActorError({ reason: "ActorsFull", detail: `at most ${limits.actorsMax} actors` }))
        actors.set(path, deliver)
        return Effect.void
      }),
      () => Effect.sync(() => {
        if (actors.get(path) === deliver) actors.delete(path)
      })
    ))

  const checkPath = (path: string): Effect.Effect<void, MessageError> =>
    validPath(path) ? Effect.void : Effect.fail(messageError("NoHandler", `invalid actor path ${JSON.stringify(path.slice(0, 80))}`))

  const serve: Service["serve"] = (tag, onChannel) =>
    Effect.gen(function*() {
      const runChannel = yield* FiberSet.makeRuntime<never>()
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          const accept = (channel: ChannelState): void => {
            runChannel(Effect.ensuring(onChannel(channelFace(channel)), closeChannel(channel)))
          }
          servers.set(tag, accept)
          return accept
        }),
        (accept) => Effect.sync(() => {
          if (servers.get(tag) === accept) servers.delete(tag)
        })
      )
    })

  const sumOverPeers = (measure: (state: PeerState) => number): number => {
    let total = measure(localState)
    for (const state of peers.values()) total += measure(state)
    return total
  }

  const service: Service = {
    local: link.local,
    connect: (address: Address) =>
      link.dial(address).pipe(
        Effect.mapError((error) => messageError("Unreachable", error.detail ?? error.reason)),
        Effect.tap(adopt),
        Effect.map((session) => session.peer)
      ),
    peers: Effect.sync(() => Array.from(peers.keys())),
    send: (peer, tag, body) =>
      Effect.zipRight(checkTag(tag), Effect.flatMap(stateOf(peer), (state) =>
        transmit(state, outgoing(Kind.message, 0, tag, undefined, undefined, body)))),
    call: (peer, tag, body, options) =>
      Effect.zipRight(checkTag(tag), request(peer, outgoing(Kind.call, 0, tag, undefined, undefined, body), options?.timeout)),
    callStream,
    handle,
    handleStream,
    events,
    attach,
    tell: (peer, path, body) =>
      Effect.zipRight(checkPath(path), Effect.flatMap(stateOf(peer), (state) =>
        transmit(state, outgoing(Kind.tell, 0, "", undefined, path, body)))),
    ask: (peer, path, body, options) =>
      Effect.zipRight(checkPath(path), request(peer, outgoing(Kind.ask, 0, "", undefined, path, body), options?.timeout)),
    open: (peer, tag) => Effect.acquireRelease(openChannel(peer, tag), (channel) => channel.close),
    serve,
    stats: Effect.sync((): Stats => ({
      ...counters,
      callsInFlight: pending.size,
      channelsOpen: sumOverPeers((state) => state.channels.size),
      streamsTracked: sumOverPeers((state) => state.reorder.size),
      reorderHeld: sumOverPeers((state) => state.reorder.held),
      eventTags: tags.size,
      eventSubscribers: tags.subscribers,
      actorsAttached: actors.size,
      handlersInFlight: sumOverPeers((state) => state.handlersInFlight)
    }))
  }
  return service
})
