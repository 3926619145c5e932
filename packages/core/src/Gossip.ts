/**
 * Gossip pub-sub over the message layer: topics, `publish`, `subscribe` (a `Stream`), and per-topic
 * validators that run before a message is delivered or forwarded.
 *
 * The dissemination itself is a pure engine per node (`internal/gossipWeft.ts` by default; the flood and
 * GossipSub-like baselines are there for comparison), the very code the 10,000-node simulator runs. This
 * service is its edge: it decodes every inbound gossip envelope with a schema (and computes the content
 * id itself — an id from the wire is never trusted), drives the engine with the node's `Clock`, tells it
 * when sessions come and go, and sends what it asks for through one bounded outbox per peer, so a slow
 * peer never holds up the others.
 */
import type { Scope } from "effect"
import { Context, Duration, Effect, Fiber, Layer, Mailbox, Random, Schedule, Schema, Stream } from "effect"
import * as Engine from "./internal/gossipEngine.js"
import type { Data, Message as EngineMessage } from "./internal/gossipMessage.js"
import { idBytes, Kind, messageId } from "./internal/gossipMessage.js"
import * as Strategies from "./internal/gossipStrategies.js"
import * as Prng from "./internal/prng.js"
import type { Values } from "./Limits.js"
import { Limits } from "./Limits.js"
import { Messages } from "./Messages.js"
import type { NodeId } from "./NodeId.js"
import * as NodeIdModule from "./NodeId.js"
import { GossipError } from "./WeftError.js"

/** The message-layer tag gossip travels under. */
export const messageTag = "weft/gossip"

/** One delivered gossip message. */
export interface Message {
  readonly topic: string
  /** The content id: SHA-256 over the topic and the payload, hex. */
  readonly id: string
  readonly data: Uint8Array
  /** The peer this node got it from (this node's own ID for its own publishes). */
  readonly from: NodeId
}

/** What a validator says: deliver and forward, drop and penalize the sender, or drop quietly. */
export type Verdict = "accept" | "reject" | "ignore"

/** A topic's validator; synchronous, because it runs inside the engine on the receive path. */
export type Validator = (message: Message) => Verdict

/** The dissemination strategy (default `weft`). */
export type Strategy = Strategies.Strategy

/** Counters: the engine's, plus this edge's own. */
export interface Stats extends Readonly<Engine.Counters> {
  readonly strategy: Strategy
  readonly peers: number
  /** Local subscribers' oldest messages dropped because they did not keep up. */
  readonly subscriberDropped: number
  /** Outbound gossip dropped because a peer's outbox was full. */
  readonly outboxDropped: number
  /** Sends the message layer refused (the session closed meanwhile, …). */
  readonly sendFailures: number
}

/** The node's gossip service. */
export class Gossip extends Context.Tag("@weft/core/Gossip")<Gossip, {
  /** Publishes `data` on `topic`; returns its content id. Publishing the same message again is a no-op. */
  readonly publish: (topic: string, data: Uint8Array) => Effect.Effect<string, GossipError>
  /**
   * Subscribes to `topic` for as long as the scope lives (at once, so nothing published after this
   * returns is missed): every new message on it, this node's own included, in a bounded buffer.
   */
  readonly subscribe: (topic: string) => Effect.Effect<Stream.Stream<Message>, GossipError, Scope.Scope>
  /** Installs the validator of `topic` for as long as the scope lives (the default accepts everything). */
  readonly validate: (topic: string, validator: Validator) => Effect.Effect<void, never, Scope.Scope>
  /** The topics this node's local subscribers follow, with how many follow each. */
  readonly topics: Effect.Effect<ReadonlyArray<{ readonly topic: string; readonly subscribers: number }>>
  readonly stats: Effect.Effect<Stats>
}>() {}

/** Options of `layer`. */
export interface Options {
  readonly strategy?: Strategy | undefined
}

// ---------------------------------------------------------------------------------------------------
// The wire: one schema per engine message, decoded at the edge

const wireSchema = (limits: Values) => {
  const topic = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(limits.gossipTopicCharsMax))
  // Ids travel as their 32 raw bytes (hex would double every IHAVE) and become hex at the edge.
  const ids = Schema.Array(Schema.Uint8ArrayFromSelf.pipe(Schema.filter((id) => id.length === idBytes))).pipe(
    Schema.maxItems(Math.max(limits.gossipIhaveIdsMax, limits.gossipIwantIdsMax))
  )
  return Schema.Union(
    Schema.Struct({ k: Schema.Literal(Kind.Data), t: topic, d: Schema.Uint8ArrayFromSelf }),
    Schema.Struct({ k: Schema.Literal(Kind.Ihave), t: topic, i: ids }),
    Schema.Struct({ k: Schema.Literal(Kind.Iwant), i: ids }),
    Schema.Struct({ k: Schema.Literal(Kind.Graft), t: topic, i: ids }),
    Schema.Struct({ k: Schema.Literal(Kind.Prune), t: topic }),
    Schema.Struct({ k: Schema.Literal(Kind.Idontwant), i: ids }),
    Schema.Struct({
      k: Schema.Literal(Kind.Subscribe),
      ts: Schema.Array(topic).pipe(Schema.maxItems(limits.gossipTopicsPerPeerMax)),
      s: Schema.Boolean
    }),
    Schema.Struct({
      k: Schema.Literal(Kind.Tree),
      t: topic,
      r: Schema.Uint8ArrayFromSelf.pipe(Schema.filter((id) => id.length === idBytes)),
      q: Schema.Int.pipe(Schema.between(0, 0xffff_ffff)),
      d: Schema.Int.pipe(Schema.between(0, 255)),
      p: Schema.Boolean
    })
  )
}

type Wire = Schema.Schema.Type<ReturnType<typeof wireSchema>>
type Internal = EngineMessage<string, Uint8Array, NodeId>

const dataOf = (topic: string, data: Uint8Array): Data<string, Uint8Array> => ({
  kind: Kind.Data,
  topic,
  id: messageId(topic, data),
  data,
  bytes: data.length
})

/** The engine's view of a decoded envelope; the id of DATA is computed here, never read from the wire. */
const hexOf = (ids: ReadonlyArray<Uint8Array>): ReadonlyArray<string> =>
  ids.map((id) => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex"))

const bytesOf = (ids: ReadonlyArray<string>): ReadonlyArray<Uint8Array> => ids.map((id) => Buffer.from(id, "hex"))

const fromWire = (wire: Wire): Internal => {
  switch (wire.k) {
    case Kind.Data:
      return dataOf(wire.t, wire.d)
    case Kind.Ihave:
      return { kind: Kind.Ihave, topic: wire.t, ids: hexOf(wire.i) }
    case Kind.Iwant:
      return { kind: Kind.Iwant, ids: hexOf(wire.i) }
    case Kind.Graft:
      return { kind: Kind.Graft, topic: wire.t, ids: hexOf(wire.i) }
    case Kind.Prune:
      return { kind: Kind.Prune, topic: wire.t }
    case Kind.Idontwant:
      return { kind: Kind.Idontwant, ids: hexOf(wire.i) }
    case Kind.Subscribe:
      return { kind: Kind.Subscribe, topics: wire.ts, subscribe: wire.s }
    case Kind.Tree:
      return { kind: Kind.Tree, topic: wire.t, root: NodeIdModule.fromBytes(wire.r), seq: wire.q, dist: wire.d, parentIsMe: wire.p }
  }
}

const toWire = (message: Internal): Wire => {
  switch (message.kind) {
    case Kind.Data:
      return { k: Kind.Data, t: message.topic, d: message.data }
    case Kind.Ihave:
      return { k: Kind.Ihave, t: message.topic, i: bytesOf(message.ids) }
    case Kind.Iwant:
      return { k: Kind.Iwant, i: bytesOf(message.ids) }
    case Kind.Graft:
      return { k: Kind.Graft, t: message.topic, i: bytesOf(message.ids) }
    case Kind.Prune:
      return { k: Kind.Prune, t: message.topic }
    case Kind.Idontwant:
      return { k: Kind.Idontwant, i: bytesOf(message.ids) }
    case Kind.Subscribe:
      return { k: Kind.Subscribe, ts: message.topics, s: message.subscribe }
    case Kind.Tree:
      return { k: Kind.Tree, t: message.topic, r: NodeIdModule.toBytes(message.root), q: message.seq, d: Math.min(255, message.dist), p: message.parentIsMe }
  }
}

// ---------------------------------------------------------------------------------------------------
// The service

const verdicts: Record<Verdict, Engine.Validation> = {
  accept: Engine.Validation.Accept,
  reject: Engine.Validation.Reject,
  ignore: Engine.Validation.Ignore
}

/** One connected peer: its bounded outbox and the fiber draining it into the message layer. */
interface Peer {
  readonly outbox: Mailbox.Mailbox<Wire>
  readonly fiber: Fiber.RuntimeFiber<void>
}

interface State {
  readonly local: NodeId
  readonly limits: Values
  readonly subscribers: Map<string, Set<Mailbox.Mailbox<Message>>>
  readonly validators: Map<string, Validator>
  readonly peers: Map<NodeId, Peer>
  /** Sends the engine asked for during the current input, handed to the outboxes after it. */
  readonly pending: Array<readonly [NodeId, Internal]>
  subscriberDropped: number
  outboxDropped: number
  sendFailures: number
}

const deliverLocal = (state: State, message: Message): void => {
  for (const subscriber of state.subscribers.get(message.topic) ?? []) {
    // A sliding mailbox keeps the newest: what it evicts is counted here.
    const size = subscriber.unsafeSize()
    if (size._tag === "Some" && size.value >= state.limits.gossipSubscriberBufferMessages) state.subscriberDropped++
    subscriber.unsafeOffer(message)
  }
}

/** Moves the engine's sends into the peers' outboxes (plain code; the outbox fibers do the sending). */
const flush = (state: State): void => {
  for (const [to, message] of state.pending) {
    const peer = state.peers.get(to)
    if (peer === undefined) continue
    const size = peer.outbox.unsafeSize()
    if (size._tag === "Some" && size.value >= state.limits.gossipPeerOutboxMessages) state.outboxDropped++
    peer.outbox.unsafeOffer(toWire(message))
  }
  state.pending.length = 0
}

const checkTopic = (state: State, topic: string): GossipError | undefined =>
  topic.length === 0 || topic.length > state.limits.gossipTopicCharsMax
    ? new GossipError({ reason: "BadTopic", detail: `a topic has 1 to ${state.limits.gossipTopicCharsMax} characters` })
    : undefined

/** Builds the service for as long as the scope lives. */
export const make = (options: Options = {}): Effect.Effect<Context.Tag.Service<Gossip>, never, Messages | Limits | Scope.Scope> =>
  Effect.gen(function*() {
    const messages = yield* Messages
    const limits = yield* Limits
    const clock = yield* Effect.clock
    const scope = yield* Effect.scope
    const strategy = options.strategy ?? "weft"
    const config = Engine.configFromLimits(limits)
    const now = () => clock.unsafeCurrentTimeMillis()
    // Seeded from the node's Random, so a simulation replays the engine's choices exactly.
    const prng = Prng.make(yield* Random.nextIntBetween(0, 2 ** 31 - 1))
    const state: State = {
      local: messages.local,
      limits,
      subscribers: new Map(),
      validators: new Map(),
      peers: new Map(),
      pending: [],
      subscriberDropped: 0,
      outboxDropped: 0,
      sendFailures: 0
    }
    const engine = Strategies.make<NodeId, string, Uint8Array>(strategy, {
      self: messages.local,
      sink: {
        send: (to, message) => void state.pending.push([to, message]),
        deliver: (message, from) => deliverLocal(state, { topic: message.topic, id: message.id, data: message.data, from }),
        // The engine already ignores a peer it wants gone; closing sessions is the connection manager's call.
        disconnect: () => {}
      },
      prng,
      validate: (topic, message, from) => {
        const validator = state.validators.get(topic)
        if (validator === undefined) return Engine.Validation.Accept
        return verdicts[validator({ topic, id: message.id, data: message.data, from: from ?? state.local })]
      }
    }, config)

    const drain = (peer: NodeId, outbox: Mailbox.Mailbox<Wire>): Effect.Effect<void> =>
      Mailbox.toStream(outbox).pipe(
        Stream.runForEach((body) =>
          messages.send(peer, messageTag, body).pipe(Effect.catchAll(() => Effect.sync(() => void state.sendFailures++)))
        )
      )

    const peerUp = (peer: NodeId) =>
      Effect.gen(function*() {
        const outbox = yield* Mailbox.make<Wire>({ capacity: limits.gossipPeerOutboxMessages, strategy: "sliding" })
        const fiber = yield* Effect.forkIn(drain(peer, outbox), scope)
        state.peers.set(peer, { outbox, fiber })
        engine.peerUp(now(), peer)
      })

    const peerDown = (peer: NodeId, known: Peer) =>
      Effect.suspend(() => {
        state.peers.delete(peer)
        engine.peerDown(now(), peer)
        return Fiber.interruptFork(known.fiber)
      })

    // Sessions come and go below; the tick notices (bounded by peersMax) and tells the engine.
    const syncPeers = Effect.gen(function*() {
      const live = new Set(yield* messages.peers)
      for (const [peer, known] of state.peers) if (!live.has(peer)) yield* peerDown(peer, known)
      for (const peer of live) if (!state.peers.has(peer)) yield* peerUp(peer)
    })

    const tick = Effect.zipRight(syncPeers, Effect.sync(() => {
      engine.onTick(now())
      flush(state)
    }))
    yield* Effect.forkScoped(Effect.repeat(tick, Schedule.spaced(Duration.millis(config.tickMs))))

    yield* messages.handle(messageTag, { body: wireSchema(limits) }, (incoming) =>
      Effect.gen(function*() {
        if (!state.peers.has(incoming.peer)) yield* syncPeers
        engine.onMessage(now(), incoming.peer, fromWire(incoming.body))
        flush(state)
      }))

    const publish = (topic: string, data: Uint8Array): Effect.Effect<string, GossipError> =>
      Effect.suspend(() => {
        const bad = checkTopic(state, topic)
        if (bad !== undefined) return Effect.fail(bad)
        const message = dataOf(topic, data)
        const result = engine.publish(now(), topic, data, message.id, data.length)
        flush(state)
        switch (result) {
          case "TooLarge":
            return Effect.fail(new GossipError({ reason: "TooLarge", detail: `${data.length} bytes > ${limits.gossipMessageBytesMax}` }))
          case "Rejected":
            return Effect.fail(new GossipError({ reason: "Rejected", detail: `the validator of ${topic} rejected it` }))
          case "Duplicate":
            return Effect.succeed(message.id)
          case "NoPeers":
          case "Published":
            deliverLocal(state, { topic, id: message.id, data, from: state.local })
            return result === "Published"
              ? Effect.succeed(message.id)
              : Effect.fail(new GossipError({ reason: "NoPeers", detail: "no subscribed peer yet: delivered to this node's subscribers, announced to the first peers that subscribe" }))
        }
      })

    const subscribe = (topic: string): Effect.Effect<Stream.Stream<Message>, GossipError, Scope.Scope> =>
      Effect.gen(function*() {
        const bad = checkTopic(state, topic)
        if (bad !== undefined) return yield* Effect.fail(bad)
        const mailbox = yield* Mailbox.make<Message>({ capacity: limits.gossipSubscriberBufferMessages, strategy: "sliding" })
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            const set = state.subscribers.get(topic) ?? new Set()
            if (set.size === 0) engine.subscribe(now(), topic)
            state.subscribers.set(topic, set.add(mailbox))
            flush(state)
          }),
          () =>
            Effect.sync(() => {
              const set = state.subscribers.get(topic)
              set?.delete(mailbox)
              if (set === undefined || set.size > 0) return
              state.subscribers.delete(topic)
              engine.unsubscribe(now(), topic)
              flush(state)
            })
        )
        return Mailbox.toStream(mailbox)
      })

    const validate = (topic: string, validator: Validator): Effect.Effect<void, never, Scope.Scope> =>
      Effect.acquireRelease(
        Effect.sync(() => void state.validators.set(topic, validator)),
        () => Effect.sync(() => void (state.validators.get(topic) === validator && state.validators.delete(topic)))
      )

    const stats = Effect.sync((): Stats => ({
      ...engine.counters,
      strategy,
      peers: state.peers.size,
      subscriberDropped: state.subscriberDropped,
      outboxDropped: state.outboxDropped,
      sendFailures: state.sendFailures
    }))

    const topics = Effect.sync(() =>
      Array.from(state.subscribers, ([topic, subscribers]) => ({ topic, subscribers: subscribers.size }))
    )

    return { publish, subscribe, validate, topics, stats }
  })

/** The gossip service as a layer over the node's message layer. */
export const layer = (options: Options = {}): Layer.Layer<Gossip, never, Messages | Limits> =>
  Layer.scoped(Gossip, make(options))
