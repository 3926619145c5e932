/**
 * Want/have between nodes over Weft RPC. A node that runs this layer serves `StoreHave` (which of these
 * ids do you hold?) and `StoreWant` (send me these objects) from its `Store`, and fetches from peers:
 *
 * ```ts
 * const SyncLive = StoreSync.layer.pipe(Layer.provideMerge(Store.layerLmdb("./data/store")))  // needs the node
 * const { fetched, missing } = yield* sync.fetch(peer, ids, { pin: true })
 * ```
 *
 * Nothing a peer sends is trusted: every object is hashed again and one that does not match the id
 * asked is dropped, counted and adds 1 to the peer's penalty; at `storeSyncPenaltyMax` the peer is
 * banned (fetches from it fail with "PeerBanned", its own requests are refused). Requests carry at most
 * `storeSyncIdsPerRequestMax` ids, a Want reply at most `storeSyncReplyBytesMax` bytes of objects (the
 * asker asks again for the rest), and a node has at most `storeSyncWantsInFlightPerPeerMax` Want
 * requests in flight to one peer, over all its fetches.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import { Context, Effect, Layer, Option, Schema } from "effect"
import type { Scope } from "effect"
import { equalBytes } from "./internal/bytes.js"
import { Penalties } from "./internal/storePenalties.js"
import * as Limits from "./Limits.js"
import type { NodeId } from "./NodeId.js"
import { short } from "./NodeId.js"
import * as NodeRpc from "./NodeRpc.js"
import * as Store from "./Store.js"
import type { NodeError } from "./WeftError.js"
import { StoreError } from "./WeftError.js"

/** The sync protocol: two rpcs, answered from the serving node's store. */
export class Rpcs extends RpcGroup.make(
  Rpc.make("StoreHave", {
    payload: { ids: Schema.Array(Store.Id) },
    success: Schema.Array(Schema.Boolean),
    error: StoreError
  }),
  Rpc.make("StoreWant", {
    payload: { ids: Schema.Array(Store.Id) },
    // One entry per id answered, in order (null: not held); ids past the last entry did not fit the reply.
    success: Schema.Array(Schema.NullOr(Schema.Uint8ArrayFromSelf)),
    error: StoreError
  })
).middleware(NodeRpc.PeerMiddleware) {}

/** Options of a fetch. */
export interface FetchOptions {
  /** Pin every fetched object (in the transaction that stores it). */
  readonly pin?: boolean | undefined
}

/** What a fetch did with each id it was given (each id lands in exactly one list). */
export interface FetchResult {
  /** Received, verified and stored. */
  readonly fetched: ReadonlyArray<Store.Id>
  /** Already held here: not asked for. */
  readonly held: ReadonlyArray<Store.Id>
  /** Not obtained: the peer lacks it, served bytes that do not match, or served an object too large to store. */
  readonly missing: ReadonlyArray<Store.Id>
}

/** What sync counts. */
export interface Stats {
  readonly wantsSent: number
  readonly objectsFetched: number
  /** Objects a peer served that did not hash to the id asked (each penalized). */
  readonly objectsMismatched: number
  /** Verified objects above this node's `storeObjectBytesMax` (not stored, not penalized). */
  readonly objectsTooLarge: number
  /** Replies that did not match their request (wrong length, undecodable). */
  readonly repliesMalformed: number
  readonly requestsServed: number
  /** Inbound requests refused: too many ids, or from a banned peer. */
  readonly requestsRefused: number
  readonly objectsServed: number
  readonly bytesServed: number
  /** Peers in the penalty table, and how many of them are banned. */
  readonly peersPenalized: number
  readonly peersBanned: number
  /** Penalty entries forgotten because the table was full. */
  readonly penaltiesForgotten: number
}

/** Content sync with peers. */
export class StoreSync extends Context.Tag("@weft/core/StoreSync")<StoreSync, {
  /** Fetches the ids this node does not hold from `peer`; fails with PeerBanned, PeerMismatch, Unreachable, Refused, or the store's errors. */
  readonly fetch: (peer: NodeId, ids: ReadonlyArray<Store.Id>, options?: FetchOptions) => Effect.Effect<FetchResult, StoreError>
  /** Which of `ids` the peer says it holds (a claim: only a fetch verifies). */
  readonly have: (peer: NodeId, ids: ReadonlyArray<Store.Id>) => Effect.Effect<ReadonlyArray<boolean>, StoreError>
  /** The peer's current penalty (0 if unknown). */
  readonly penalty: (peer: NodeId) => Effect.Effect<number>
  readonly stats: Effect.Effect<Stats>
}>() {}

/** Room left in an envelope for everything around a Want reply's objects. */
const replyOverheadBytes = 4096

type Client = NodeRpc.Client<typeof Rpcs>

interface Counters {
  wantsSent: number
  objectsFetched: number
  objectsMismatched: number
  objectsTooLarge: number
  repliesMalformed: number
  requestsServed: number
  requestsRefused: number
  objectsServed: number
  bytesServed: number
}

const chunk = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const chunks: Array<ReadonlyArray<A>> = []
  for (let at = 0; at < items.length; at += size) chunks.push(items.slice(at, at + size))
  return chunks
}

const checkLimits = (limits: Limits.Values): Effect.Effect<void> =>
  limits.storeSyncReplyBytesMax < limits.storeObjectBytesMax || limits.storeSyncReplyBytesMax > limits.envelopeBytesMax - replyOverheadBytes
    ? Effect.dieMessage(
      `StoreSync: storeSyncReplyBytesMax (${limits.storeSyncReplyBytesMax}) must be at least storeObjectBytesMax (${limits.storeObjectBytesMax}) and at most envelopeBytesMax less ${replyOverheadBytes} (${limits.envelopeBytesMax - replyOverheadBytes})`
    )
    : Effect.void

/** The server side: handlers that answer from `store`, refusing banned peers and oversized requests. */
const handlers = (store: Store.Service, limits: Limits.Values, penalties: Penalties<NodeId>, counters: Counters) => {
  const admit = (ids: ReadonlyArray<Store.Id>) =>
    Effect.flatMap(NodeRpc.RemotePeer, (peer) => {
      const refusal = penalties.isBanned(peer)
        ? new StoreError({ reason: "PeerBanned", detail: `node ${short(peer)} is banned from store sync here` })
        : ids.length > limits.storeSyncIdsPerRequestMax
        ? new StoreError({ reason: "TooLarge", detail: `${ids.length} ids in one request, at most ${limits.storeSyncIdsPerRequestMax}` })
        : undefined
      if (refusal === undefined) {
        counters.requestsServed++
        return Effect.void
      }
      counters.requestsRefused++
      return Effect.fail(refusal)
    })

  // This node's own corrupt copy is no answer: the store counted it, the peer hears "not held".
  const readable = (id: Store.Id) =>
    store.get(id).pipe(Effect.catchIf((error) => error.reason === "Corrupt", () => Effect.succeedNone))

  const want = (ids: ReadonlyArray<Store.Id>) =>
    Effect.gen(function*() {
      yield* admit(ids)
      const reply: Array<Uint8Array | null> = []
      let bytes = 0
      for (const id of ids) {
        const found = yield* readable(id)
        if (Option.isNone(found)) {
          reply.push(null)
          continue
        }
        // The first object always goes, so every reply makes progress.
        if (reply.length > 0 && bytes + found.value.length > limits.storeSyncReplyBytesMax) break
        bytes += found.value.length
        reply.push(found.value)
        counters.objectsServed++
      }
      counters.bytesServed += bytes
      return reply
    })

  return {
    StoreHave: ({ ids }: { readonly ids: ReadonlyArray<Store.Id> }) => Effect.zipRight(admit(ids), Effect.forEach(ids, store.has)),
    StoreWant: ({ ids }: { readonly ids: ReadonlyArray<Store.Id> }) => want(ids)
  }
}

/** Builds the service and serves the rpcs on the node for the life of the scope. */
export const make: Effect.Effect<StoreSync["Type"], NodeError, Store.Store | NodeRpc.NodeRpc | Limits.Limits | Scope.Scope> = Effect.gen(function*() {
  const store = yield* Store.Store
  const limits = yield* Limits.Limits
  const rpc = yield* NodeRpc.NodeRpc
  yield* checkLimits(limits)
  const penalties = new Penalties<NodeId>(limits.storeSyncPenaltyPeersMax, limits.storeSyncPenaltyMax)
  const counters: Counters = {
    wantsSent: 0,
    objectsFetched: 0,
    objectsMismatched: 0,
    objectsTooLarge: 0,
    repliesMalformed: 0,
    requestsServed: 0,
    requestsRefused: 0,
    objectsServed: 0,
    bytesServed: 0
  }
  yield* Layer.build(NodeRpc.serve(Rpcs, handlers(store, limits, penalties, counters), { name: "StoreSync" }).pipe(
    Layer.provide(Layer.succeed(NodeRpc.NodeRpc, rpc))
  ))
  const client = makeClient(store, limits, rpc, penalties, counters)

  const stats = Effect.sync((): Stats => ({
    ...counters,
    peersPenalized: penalties.size,
    peersBanned: penalties.banned,
    penaltiesForgotten: penalties.forgotten
  }))

  return StoreSync.of({
    fetch: client.fetch,
    have: client.have,
    penalty: (peer) => Effect.sync(() => penalties.penalty(peer)),
    stats
  })
})

/** The service, serving `Rpcs` on the node it is built on. */
export const layer: Layer.Layer<StoreSync, NodeError, Store.Store | NodeRpc.NodeRpc | Limits.Limits> = Layer.scoped(StoreSync, make)

/** One semaphore of `permits` per peer, held while any fetch from it runs: bounded by the fetches in progress. */
const makeLanes = (permits: number) => {
  const lanes = new Map<NodeId, { readonly semaphore: Effect.Semaphore; users: number }>()
  return (peer: NodeId): Effect.Effect<Effect.Semaphore, never, Scope.Scope> =>
    Effect.acquireRelease(
      Effect.sync(() => {
        let entry = lanes.get(peer)
        if (entry === undefined) {
          entry = { semaphore: Effect.unsafeMakeSemaphore(permits), users: 0 }
          lanes.set(peer, entry)
        }
        entry.users++
        return entry.semaphore
      }),
      () =>
        Effect.sync(() => {
          const entry = lanes.get(peer)
          if (entry !== undefined && --entry.users === 0) lanes.delete(peer)
        })
    )
}

/** The asking side: per-peer lanes that bound Want requests in flight, and the checks on every reply. */
const makeClient = (
  store: Store.Service,
  limits: Limits.Values,
  rpc: NodeRpc.NodeRpc["Type"],
  penalties: Penalties<NodeId>,
  counters: Counters
) => {
  const lane = makeLanes(limits.storeSyncWantsInFlightPerPeerMax)

  const notBanned = (peer: NodeId): Effect.Effect<void, StoreError> =>
    penalties.isBanned(peer)
      ? Effect.fail(new StoreError({ reason: "PeerBanned", detail: `node ${short(peer)} served objects that did not match their ids` }))
      : Effect.void

  const penalize = (peer: NodeId, why: string): Effect.Effect<void> => {
    const wasBanned = penalties.isBanned(peer)
    penalties.add(peer, 1)
    return !wasBanned && penalties.isBanned(peer)
      ? Effect.logWarning(`store sync: node ${short(peer)} banned (${why})`)
      : Effect.void
  }

  const mismatch = (peer: NodeId, detail: string): Effect.Effect<never, StoreError> => {
    counters.repliesMalformed++
    return Effect.zipRight(penalize(peer, detail), Effect.fail(new StoreError({ reason: "PeerMismatch", detail: `node ${short(peer)}: ${detail}` })))
  }

  /** One call: the peer's refusals and a lost peer become StoreErrors, an undecodable reply a penalty. */
  const call = <A>(peer: NodeId, effect: Effect.Effect<A, StoreError | RpcClientError>): Effect.Effect<A, StoreError> =>
    effect.pipe(
      Effect.mapError((error) =>
        error._tag === "StoreError"
          ? new StoreError({ reason: "Refused", detail: `node ${short(peer)} refused: ${error.reason}${error.detail === undefined ? "" : `: ${error.detail}`}` })
          : new StoreError({ reason: "Unreachable", detail: `node ${short(peer)}: ${error.message}` })
      ),
      Effect.catchAllDefect((defect) => mismatch(peer, `reply did not decode (${defect instanceof Error ? defect.message : String(defect)})`.slice(0, 300)))
    )

  const session = (peer: NodeId) =>
    Effect.all([lane(peer), rpc.client(Rpcs, peer)])

  return {
    fetch: (peer: NodeId, ids: ReadonlyArray<Store.Id>, options?: FetchOptions) =>
      Effect.scoped(Effect.gen(function*() {
        yield* notBanned(peer)
        const { held, wanted } = yield* split(store, ids)
        const [semaphore, client] = yield* session(peer)
        const want = makeWant({ peer, client, semaphore, store, limits, counters, call, notBanned, penalize, mismatch, pin: options?.pin === true })
        const results = yield* Effect.forEach(chunk(wanted, limits.storeSyncIdsPerRequestMax), want, {
          concurrency: limits.storeSyncWantsInFlightPerPeerMax
        })
        return { fetched: results.flatMap((r) => r.fetched), held, missing: results.flatMap((r) => r.missing) }
      })),
    have: (peer: NodeId, ids: ReadonlyArray<Store.Id>) =>
      Effect.scoped(Effect.gen(function*() {
        yield* notBanned(peer)
        const [semaphore, client] = yield* session(peer)
        const answers = yield* Effect.forEach(chunk(ids, limits.storeSyncIdsPerRequestMax), (batch) =>
          Effect.flatMap(semaphore.withPermits(1)(call(peer, client.StoreHave({ ids: batch }))), (reply) =>
            reply.length === batch.length ? Effect.succeed(reply) : mismatch(peer, `${reply.length} answers to ${batch.length} ids`)))
        return answers.flat()
      }))
  }
}

/** Dedupes `ids` and separates those already held. */
const split = (store: Store.Service, ids: ReadonlyArray<Store.Id>) =>
  Effect.gen(function*() {
    const seen = new Set<string>()
    const held: Array<Store.Id> = []
    const wanted: Array<Store.Id> = []
    for (const id of ids) {
      const key = Store.toHex(id)
      if (seen.has(key)) continue
      seen.add(key)
      if (yield* store.has(id)) held.push(id)
      else wanted.push(id)
    }
    return { held, wanted }
  })

interface WantContext {
  readonly peer: NodeId
  readonly client: Client
  readonly semaphore: Effect.Semaphore
  readonly store: Store.Service
  readonly limits: Limits.Values
  readonly counters: Counters
  readonly call: <A>(peer: NodeId, effect: Effect.Effect<A, StoreError | RpcClientError>) => Effect.Effect<A, StoreError>
  readonly notBanned: (peer: NodeId) => Effect.Effect<void, StoreError>
  readonly penalize: (peer: NodeId, why: string) => Effect.Effect<void>
  readonly mismatch: (peer: NodeId, detail: string) => Effect.Effect<never, StoreError>
  readonly pin: boolean
}

/** Fetches one batch: asks again for what did not fit a reply until every id is answered. */
const makeWant = (context: WantContext) => (batch: ReadonlyArray<Store.Id>) =>
  Effect.gen(function*() {
    const { client, counters, peer, semaphore } = context
    const fetched: Array<Store.Id> = []
    const missing: Array<Store.Id> = []
    let pending = batch
    while (pending.length > 0) {
      yield* context.notBanned(peer)
      counters.wantsSent++
      const reply = yield* semaphore.withPermits(1)(context.call(peer, client.StoreWant({ ids: pending })))
      if (reply.length > pending.length) return yield* context.mismatch(peer, `${reply.length} objects for ${pending.length} ids`)
      // A reply that answers nothing would loop forever: what it left out counts as missing.
      const answered = reply.length === 0 ? pending.length : reply.length
      const verified = yield* verify(context, pending.slice(0, reply.length), reply, missing)
      if (verified.bytes.length > 0) {
        yield* context.store.putAll(verified.bytes, { pin: context.pin })
        fetched.push(...verified.ids)
        counters.objectsFetched += verified.ids.length
      }
      if (reply.length === 0) missing.push(...pending)
      pending = pending.slice(answered)
    }
    return { fetched, missing }
  })

/** Keeps the objects that hash to the id asked and fit this store; the rest go to `missing`. */
const verify = (context: WantContext, ids: ReadonlyArray<Store.Id>, reply: ReadonlyArray<Uint8Array | null>, missing: Array<Store.Id>) =>
  Effect.gen(function*() {
    const verifiedIds: Array<Store.Id> = []
    const bytes: Array<Uint8Array> = []
    for (let index = 0; index < reply.length; index++) {
      const id = ids[index]!
      const object = reply[index]!
      if (object === null) {
        missing.push(id)
      } else if (!equalBytes(Store.idOf(object), id)) {
        context.counters.objectsMismatched++
        missing.push(id)
        yield* context.penalize(context.peer, "objects not matching their ids")
      } else if (object.length > context.limits.storeObjectBytesMax) {
        context.counters.objectsTooLarge++
        missing.push(id)
      } else {
        verifiedIds.push(id)
        bytes.push(object)
      }
    }
    return { ids: verifiedIds, bytes }
  })
