/**
 * The ephemeral-message service of a node: relays messages over core `Gossip` (topic `weft/ephemeral/v1`)
 * with validation as the topic's hook, stores them if configured, and serves light clients an RPC group
 * (`Rpcs`): send a pre-built message, look up by ID0 prefix, stream an inbox, read the parameters a
 * client needs to build a message, and read an account's lattice keys.
 *
 * ```ts
 * const Ephemeral = EphemeralNode.layer({ relay: true, store: true }).pipe(
 *   Layer.provide([EphemeralLimits.layer(), Chain.layerMemory(chain)])   // the ledger node provides ChainView
 * )
 * const MyNode = Ephemeral.pipe(Layer.provideMerge(Node.layer({ ... })))
 * ```
 *
 * Everything on the receive path is plain code inside gossip's validator (decode, checks, one digest and
 * one proof hash, a store insert, offers to inbox mailboxes): no fiber per message.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import type { Scope } from "effect"
import { Chunk, Context, Duration, Effect, Layer, Mailbox, Option, Schedule, Schema, Stream } from "effect"
import { Gossip, Messages, NodeRpc } from "@weft/core"
import type { WeftError } from "@weft/core"
import type { AccountId, LatticeKey } from "./Chain.js"
import { ChainView } from "./Chain.js"
import type { Values } from "./EphemeralLimits.js"
import { EphemeralLimits } from "./EphemeralLimits.js"
import { EphemeralError } from "./EphemeralError.js"
import type { InsertResult, Stats as StoreStats } from "./EphemeralStore.js"
import { Store } from "./EphemeralStore.js"
import type { Message } from "./Message.js"
import * as MessageModule from "./Message.js"
import * as Pow from "./Pow.js"
import type { Result, Stats as ValidationStats } from "./Validate.js"
import { Validator } from "./Validate.js"

/** The gossip topic ephemeral messages travel on. */
export const topic = "weft/ephemeral/v1"

/** How a node runs the service. */
export interface Config {
  /** Forward valid messages to peers (default true); off, the node only takes them in. */
  readonly relay?: boolean | undefined
  /** Keep valid messages until their TTL for lookups and inboxes (default true). */
  readonly store?: boolean | undefined
  /** Furthest TTL from now accepted (default `EphemeralLimits.ttlMax`). */
  readonly ttlMax?: Duration.DurationInput | undefined
  /** Recent blocks a message's block hash may name (default `EphemeralLimits.blockDepth`). */
  readonly blockDepth?: number | undefined
  /** Proof-of-work algorithms accepted, with their parameters (default `[Pow.sha256()]`). */
  readonly algorithms?: ReadonlyArray<Pow.Algorithm> | undefined
  /** Serve `Rpcs` for light clients (default true). */
  readonly rpc?: boolean | undefined
}

/** A message as local subscribers get it. */
export interface Delivered {
  readonly message: Message
  /** Its encoding (what relays and clients exchange). */
  readonly encoded: Uint8Array
  readonly workBits: number
}

/** What a submission did. */
export interface Submitted {
  readonly id: string
  readonly workBits: number
  /** The store's answer, or "Off" when this node stores nothing. */
  readonly stored: InsertResult | "Off"
  /** False when no peer wanted it yet (gossip announces it to the first that subscribe). */
  readonly relayed: boolean
}

/** What a client needs to build a message for this node. */
export class Info extends Schema.Class<Info>("@weft/ephemeral/Info")({
  nowSeconds: Schema.Number,
  ttlMaxSeconds: Schema.Number,
  blockDepth: Schema.Number,
  /** Prefixes of the newest block hashes, newest first. */
  recentBlockHashes: Schema.Array(Schema.Uint8ArrayFromSelf),
  algorithms: Schema.Array(Schema.Struct({
    id: Schema.Number,
    name: Schema.String,
    proofBytes: Schema.Number,
    workBitsMin: Schema.Number,
    ttlFactor: Schema.Number,
    sizeFactor: Schema.Number
  })),
  relay: Schema.Boolean,
  store: Schema.Boolean
}) {}

/** What the service counts. */
export interface Stats {
  readonly validation: ValidationStats
  readonly store: StoreStats | undefined
  /** Messages handed to local inbox subscribers, and those dropped because one did not keep up. */
  readonly delivered: number
  readonly inboxDropped: number
}

/** The service. */
export class EphemeralNode extends Context.Tag("@weft/ephemeral/EphemeralNode")<EphemeralNode, {
  /** Validates and publishes an encoded message; a refusal is `EphemeralError("Rejected")` with the reason. */
  readonly submit: (encoded: Uint8Array) => Effect.Effect<Submitted, EphemeralError>
  /** Stored live messages whose ID0 starts with `prefix` (empty: any), at most `lookupResultsMax`. */
  readonly lookup: (prefix: Uint8Array) => Effect.Effect<ReadonlyArray<Message>>
  /**
   * Every message this node accepts from now on (its own included), for as long as the scope lives; at
   * most `inboxSubscribersMax` at once, past which it fails with `EphemeralError("InboxesFull")`.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<Delivered>, EphemeralError, Scope.Scope>
  readonly info: Effect.Effect<Info>
  /** Reads the chain's recent block hashes now (it also does so every `chainRefreshInterval`). */
  readonly refreshChain: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}>() {}

// ---------------------------------------------------------------------------------------------------
// The RPC group

const LatticeKeySchema = Schema.Struct({ kemPublicKey: Schema.Uint8ArrayFromSelf, dsaPublicKey: Schema.Uint8ArrayFromSelf })

/** The light-client protocol. */
export class Rpcs extends RpcGroup.make(
  Rpc.make("EphemeralSend", {
    payload: { message: Schema.Uint8ArrayFromSelf },
    success: Schema.Struct({ id: Schema.String, workBits: Schema.Number, stored: Schema.String, relayed: Schema.Boolean }),
    error: EphemeralError
  }),
  Rpc.make("EphemeralLookup", {
    payload: { prefix: Schema.Uint8ArrayFromSelf.pipe(Schema.filter((prefix) => prefix.length <= MessageModule.idHalfBytes)) },
    success: Schema.Array(Schema.Uint8ArrayFromSelf)
  }),
  Rpc.make("EphemeralInbox", {
    payload: {
      /** ID0s to watch (a client's channel windows). */
      ids: Schema.Array(Schema.Uint8ArrayFromSelf),
      /** Also every message whose payload has this length (candidate channel openings). */
      sizeClass: Schema.optional(Schema.Number),
      /** Start with the stored matches (default true), then follow. */
      stored: Schema.optional(Schema.Boolean)
    },
    success: Schema.Uint8ArrayFromSelf,
    error: EphemeralError,
    stream: true
  }),
  Rpc.make("EphemeralInfo", { success: Info }),
  Rpc.make("EphemeralLatticeKey", { payload: { account: Schema.String }, success: Schema.NullOr(LatticeKeySchema) })
).middleware(NodeRpc.PeerMiddleware) {}

// ---------------------------------------------------------------------------------------------------
// The service

interface Subscriber {
  readonly mailbox: Mailbox.Mailbox<Delivered>
  readonly capacity: number
}

interface Counters {
  delivered: number
  inboxDropped: number
}

const encodeOrDie = (message: Message): Uint8Array => {
  const encoded = MessageModule.encode(message)
  // The store only holds messages it decoded: they encode.
  if (encoded._tag === "Left") throw new Error(`EphemeralNode: a stored message does not encode: ${encoded.left.detail}`)
  return encoded.right
}

const rejected = (result: Extract<Result, { ok: false }>) =>
  new EphemeralError({ reason: "Rejected", rejection: result.reason, detail: `${result.reason}: ${result.detail}` })

const deliver = (subscribers: Set<Subscriber>, counters: Counters, delivered: Delivered): void => {
  for (const subscriber of subscribers) {
    const size = subscriber.mailbox.unsafeSize()
    if (size._tag === "Some" && size.value >= subscriber.capacity) counters.inboxDropped++
    subscriber.mailbox.unsafeOffer(delivered)
    counters.delivered++
  }
}

/** Builds the service for as long as the scope lives. */
export const make = (config: Config = {}): Effect.Effect<
  EphemeralNode["Type"],
  never,
  Gossip.Gossip | Messages.Messages | NodeRpc.NodeRpc | ChainView | EphemeralLimits | Scope.Scope
> =>
  Effect.gen(function*() {
    const limits = yield* EphemeralLimits
    const gossip = yield* Gossip.Gossip
    const messages = yield* Messages.Messages
    const chain = yield* ChainView
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const relay = config.relay !== false
    const algorithms = Pow.registry(config.algorithms ?? [Pow.sha256()])
    const ttlMax = Duration.decode(config.ttlMax ?? limits.ttlMax)
    const blockDepth = config.blockDepth ?? limits.blockDepth
    const validator = new Validator({ algorithms, ttlMax, blockDepth, seenEntriesMax: limits.seenEntriesMax, rejectPeersMax: limits.rejectPeersMax })
    const store = config.store === false ? undefined : new Store(limits)
    const subscribers = new Set<Subscriber>()
    const counters: Counters = { delivered: 0, inboxDropped: 0 }
    let recent: ReadonlyArray<Uint8Array> = []

    const refreshChain = Effect.map(chain.recentBlockHashes, (hashes) => {
      recent = hashes.slice(0, blockDepth)
      validator.setRecentBlockHashes(recent)
    })
    yield* refreshChain
    yield* Effect.forkScoped(Effect.repeat(refreshChain, Schedule.spaced(limits.chainRefreshInterval)))
    if (store !== undefined) {
      yield* Effect.forkScoped(Effect.repeat(Effect.sync(() => store.sweep(now())), Schedule.spaced(limits.sweepInterval)))
    }

    // The hook: validation, store, local delivery. Relay off: take it in, forward nothing (ignore).
    yield* gossip.validate(topic, (incoming) => {
      const own = incoming.from === messages.local
      const result = validator.checkBytes(incoming.data, now(), own ? {} : { peer: incoming.from })
      if (!result.ok) return Validator.verdict(result)
      store?.insert(incoming.data, result.workBits, now())
      deliver(subscribers, counters, { message: result.message, encoded: incoming.data, workBits: result.workBits })
      return relay || own ? "accept" : "ignore"
    })
    // Joining the topic is what makes peers send it here; delivery itself happens in the hook.
    const joined = yield* gossip.subscribe(topic).pipe(Effect.orDie)
    yield* Effect.forkScoped(Stream.runDrain(joined))

    const submit = (encoded: Uint8Array): Effect.Effect<Submitted, EphemeralError> =>
      Effect.gen(function*() {
        yield* refreshChain
        const result = validator.checkBytes(encoded, now(), { mark: false })
        if (!result.ok) return yield* rejected(result)
        const before = store?.stats().stored ?? 0
        const relayed = yield* gossip.publish(topic, encoded).pipe(
          Effect.as(true),
          Effect.catchAll((error: WeftError.GossipError) =>
            error.reason === "NoPeers" ? Effect.succeed(false) : Effect.fail(new EphemeralError({ reason: "Rejected", detail: `gossip refused it: ${error.reason}` })))
        )
        const stored: InsertResult | "Off" = store === undefined ? "Off" : store.stats().stored > before ? "Stored" : storedOutcome(store, result.message, now())
        return { id: MessageModule.idHex(result.message), workBits: result.workBits, stored, relayed }
      })

    const subscribe = Effect.gen(function*() {
      if (subscribers.size >= limits.inboxSubscribersMax) {
        return yield* new EphemeralError({ reason: "InboxesFull", detail: `${subscribers.size} inbox subscriptions already` })
      }
      const capacity = limits.inboxBufferMessages
      const mailbox = yield* Mailbox.make<Delivered>({ capacity, strategy: "sliding" })
      const subscriber: Subscriber = { mailbox, capacity }
      yield* Effect.acquireRelease(Effect.sync(() => void subscribers.add(subscriber)), () => Effect.sync(() => void subscribers.delete(subscriber)))
      return Mailbox.toStream(mailbox)
    })

    const info = Effect.sync(() =>
      new Info({
        nowSeconds: Math.floor(now() / 1000),
        ttlMaxSeconds: Duration.toSeconds(ttlMax),
        blockDepth,
        recentBlockHashes: recent.map((blockHash) => blockHash.slice(0, MessageModule.blockHashBytes)),
        algorithms: [...algorithms.values()].map((algorithm) => ({ id: algorithm.id, name: algorithm.name, proofBytes: algorithm.proofBytes, ...algorithm.params })),
        relay,
        store: store !== undefined
      })
    )

    const service = EphemeralNode.of({
      submit,
      lookup: (prefix) => Effect.sync(() => store?.lookup(prefix, now()) ?? []),
      subscribe,
      info,
      refreshChain,
      stats: Effect.sync(() => ({ validation: validator.stats(), store: store?.stats(), ...counters }))
    })
    if (config.rpc !== false) {
      const rpc = yield* NodeRpc.NodeRpc
      yield* Layer.build(NodeRpc.serve(Rpcs, handlers(service, chain, limits), { name: "Ephemeral" }).pipe(
        Layer.provide(Layer.succeed(NodeRpc.NodeRpc, rpc))
      )).pipe(Effect.orDie)
    }
    return service
  })

/** Why a valid message was not newly stored (it was stored before, or the store refused it). */
const storedOutcome = (store: Store, message: Message, nowMs: number): InsertResult =>
  store.get(message.id, nowMs) !== undefined ? "Duplicate" : "Refused"

/** The service as a layer over a node. */
export const layer = (config: Config = {}): Layer.Layer<
  EphemeralNode,
  never,
  Gossip.Gossip | Messages.Messages | NodeRpc.NodeRpc | ChainView | EphemeralLimits
> => Layer.scoped(EphemeralNode, make(config))

// ---------------------------------------------------------------------------------------------------
// Serving light clients

const idSetKey = (id0: Uint8Array): string => MessageModule.idKey(id0)

const handlers = (service: EphemeralNode["Type"], chain: ChainView["Type"], limits: Values) => ({
  EphemeralSend: ({ message }: { readonly message: Uint8Array }) =>
    Effect.map(service.submit(message), (submitted) => ({ ...submitted, stored: submitted.stored as string })),
  EphemeralLookup: ({ prefix }: { readonly prefix: Uint8Array }) =>
    Effect.map(service.lookup(prefix), (found) => found.map(encodeOrDie)),
  EphemeralInbox: (request: { readonly ids: ReadonlyArray<Uint8Array>; readonly sizeClass?: number | undefined; readonly stored?: boolean | undefined }) =>
    inbox(service, limits, request),
  EphemeralInfo: () => service.info,
  EphemeralLatticeKey: ({ account }: { readonly account: string }) =>
    Effect.map(chain.latticeKey(account), (found) => Option.getOrNull(found))
})

const inbox = (
  service: EphemeralNode["Type"],
  limits: Values,
  request: { readonly ids: ReadonlyArray<Uint8Array>; readonly sizeClass?: number | undefined; readonly stored?: boolean | undefined }
): Stream.Stream<Uint8Array, EphemeralError> => {
  if (request.ids.length > limits.inboxIdsMax) {
    return Stream.fail(new EphemeralError({ reason: "TooLarge", detail: `${request.ids.length} ids watched, at most ${limits.inboxIdsMax}` }))
  }
  const watched = new Set(request.ids.filter((id) => id.length === MessageModule.idHalfBytes).map(idSetKey))
  const matches = (message: Message) =>
    watched.has(idSetKey(MessageModule.id0(message))) || (request.sizeClass !== undefined && message.payload.length === request.sizeClass)
  return Stream.unwrapScoped(Effect.gen(function*() {
    // Subscribe before reading the store, so nothing accepted in between is missed (a repeat is possible).
    const live = yield* service.subscribe
    const stored = request.stored === false ? [] : (yield* service.lookup(new Uint8Array(0))).filter(matches).map(encodeOrDie)
    return Stream.concat(
      Stream.fromChunk(Chunk.fromIterable(stored)),
      live.pipe(Stream.filter((delivered) => matches(delivered.message)), Stream.map((delivered) => delivered.encoded))
    )
  }))
}

// ---------------------------------------------------------------------------------------------------
// The client side

/**
 * A light client's view of the chain from a node's answers, however they are fetched: a node that
 * cannot answer reads as one with no recent blocks and no keys (channels then fail with their own errors).
 */
export const chainViewFrom = <E>(
  info: Effect.Effect<Info, E>,
  latticeKey: (account: AccountId) => Effect.Effect<Option.Option<LatticeKey>, E>
): ChainView["Type"] => ({
  recentBlockHashes: info.pipe(Effect.map((found) => found.recentBlockHashes), Effect.orElseSucceed(() => [])),
  latticeKey: (account: AccountId) => latticeKey(account).pipe(Effect.orElseSucceed(() => Option.none()))
})

/** A light client's view of the chain through a node's `Rpcs` (for `Channel.open` and `Channel.accept`). */
export const chainViewOf = (client: NodeRpc.Client<typeof Rpcs>): ChainView["Type"] =>
  chainViewFrom(
    client.EphemeralInfo(),
    (account) => client.EphemeralLatticeKey({ account }).pipe(Effect.map((found): Option.Option<LatticeKey> => Option.fromNullable(found)))
  )

/** The algorithms of `info` this code can solve (the shipped `sha256`), with the node's parameters. */
export const algorithmsOf = (info: Info): ReadonlyArray<Pow.Algorithm> =>
  info.algorithms.flatMap((entry) => entry.id === Pow.sha256Id ? [Pow.sha256({ workBitsMin: entry.workBitsMin, ttlFactor: entry.ttlFactor, sizeFactor: entry.sizeFactor })] : [])

/** What a client wants to send. */
export interface Draft {
  readonly id: Uint8Array
  readonly payload: Uint8Array
  /** Lifetime from now. */
  readonly ttl: Duration.DurationInput
}

/**
 * How many blocks behind the node's newest a message is stamped with: a peer that has not yet imported
 * the newest blocks (blocks and messages race over gossip) would ignore a message naming one of them as
 * `UnknownBlock`. Well inside any sensible `blockDepth`; a younger chain gets its oldest known block.
 */
export const stampLagBlocks = 4

/**
 * Builds a message for the node that answered `info`: a recent block hash (`stampLagBlocks` behind its
 * newest), a TTL `draft.ttl` from the node's clock, and the proof of work its parameters need
 * (`onProgress` sees the solver run).
 */
export const build = (info: Info, draft: Draft, options: Pow.SolveOptions = {}): Effect.Effect<Uint8Array, EphemeralError> =>
  Effect.gen(function*() {
    const algorithm = algorithmsOf(info)[0]
    if (algorithm === undefined) return yield* new EphemeralError({ reason: "UnknownAlgorithm", detail: "the node accepts no algorithm this client can solve" })
    const recent = info.recentBlockHashes
    const blockHash = recent[Math.min(stampLagBlocks, recent.length - 1, Math.max(0, info.blockDepth - 1))]
    if (blockHash === undefined) return yield* new EphemeralError({ reason: "NoBlocks", detail: "the node knows no recent block hash yet" })
    const ttl = info.nowSeconds + Math.max(1, Math.ceil(Duration.toSeconds(Duration.decode(draft.ttl))))
    // The node's clock, not this machine's: the work needed is measured against it.
    const message = yield* Pow.seal(algorithm, { id: draft.id, payload: draft.payload, ttl, blockHash }, info.nowSeconds * 1000, options)
    return yield* MessageModule.encode(message)
  })
