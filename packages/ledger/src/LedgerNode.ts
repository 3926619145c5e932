/**
 * The ledger running inside a Weft node: blocks and transactions over gossip, a bounded mempool,
 * block production in this node's slots when it holds an authority key, the `LedgerStore` following
 * the fork choice, and catch-up through store sync.
 *
 * - Gossip topics derive from the chain id (`weft/ledger/<chain>/blocks|txs|heads|offers`); each has a
 *   validator (see `internal/nodeGossip.ts`): provably bad input is "reject" (gossip penalizes the
 *   sender), input that depends on this node's view is "ignore".
 * - Every block is put into the content store as the canonical `[blockBytes, parentObjectId]`, pinned,
 *   and gossiped as that object; heads are announced every `announceInterval`. A block whose parent is
 *   unknown, or a head above ours, starts a catch-up from the peer that sent it: walk back through
 *   `StoreSync`, at most `catchUpFetchBlocksMax` fetches per round, then import forward.
 * - Consensus keeps its tree in memory: on start the stored chain is replayed into it.
 * - An authority node claims its block rewards on its own (`autoClaim`, on by default).
 * - The explorer index (`Explorer`) follows finality: after each import it folds up to the finalized block.
 * - Every hostile input ends as a typed `LedgerError` and a counter (`stats`), never a crash.
 *
 * ```ts
 * const LedgerLive = LedgerNode.layer({ genesis, authority }).pipe(
 *   Layer.provideMerge(Consensus.layer({ genesis })), Layer.provideMerge(LedgerStore.layerLmdb(dir)), …)
 * ```
 */
import { Gossip, Identity, Limits, type NodeId as NodeIdModule, Store, StoreSync } from "@weft/core"
import type { Scope } from "effect"
import { Clock, Context, Duration, Effect, Either, HashMap, Layer, Option, Queue, Stream } from "effect"
import type * as Account from "./Account.js"
import * as Block from "./Block.js"
import * as Consensus from "./Consensus.js"
import type * as Id from "./Id.js"
import { type LedgerError, make as fail } from "./LedgerError.js"
import * as LedgerLimits from "./LedgerLimits.js"
import { LedgerStore } from "./LedgerStore.js"
import * as Mempool from "./Mempool.js"
import type * as Params from "./Params.js"
import type * as State from "./State.js"
import * as Transaction from "./Transaction.js"
import * as Wallet from "./Wallet.js"
import * as NodeChain from "./internal/nodeChain.js"
import * as NodeCatchUp from "./internal/nodeCatchUp.js"
import * as NodeGenesis from "./internal/nodeGenesis.js"
import * as NodeGossip from "./internal/nodeGossip.js"
import * as Runtime from "./internal/nodeState.js"
import * as Wire from "./internal/nodeWire.js"

type NodeId = NodeIdModule.NodeId

/** How a ledger node runs. */
export interface Options {
  /** The chain: must be the genesis the `Consensus` layer runs. */
  readonly genesis: Block.Genesis
  /** This node's authority account: with it, the node produces blocks in its slots. */
  readonly authority?: Account.Account | undefined
  /** How often the head is announced on gossip (default: the block time). */
  readonly announceInterval?: Duration.DurationInput | undefined
  /**
   * With an authority: claim its accrued block rewards on its own, merged into its largest coin, so
   * they never pile up unclaimed (default true). Checked after an import at most once per
   * `autoClaimIntervalBlocks` blocks, and only while the mempool holds no Mint of the authority (its own or a manual one).
   * `false` leaves them unclaimed until a Mint transaction (`weft token mint all`).
   */
  readonly autoClaim?: boolean | undefined
}

/** What a node counts. */
export interface Stats extends Readonly<Runtime.Counters> {
  readonly height: number
  readonly finalizedHeight: number
  readonly mempoolTransactions: number
  /** Refusals by `"<what>/<reason>"`. */
  readonly reasons: Readonly<Record<string, number>>
}

/** The running ledger of a node. */
export interface Service {
  readonly genesis: Block.Genesis
  readonly params: Params.Params
  readonly head: Effect.Effect<Consensus.Entry>
  readonly finalized: Effect.Effect<Consensus.Entry>
  /** The head's state (a value: reads never block imports). */
  readonly state: Effect.Effect<State.State>
  /** Decodes a signed transaction at the edge, admits it to the mempool and gossips it; its id. */
  readonly submit: (bytes: Uint8Array) => Effect.Effect<Id.Id, LedgerError>
  /** The height of the head-chain block that includes the transaction, if it is recent enough to be remembered. */
  readonly included: (txId: Id.Id) => Effect.Effect<Option.Option<number>>
  /** Whether the mempool holds the transaction. */
  readonly pending: (txId: Id.Id) => Effect.Effect<boolean>
  /** The nonce the account's next transaction carries (after the head and the mempool). */
  readonly nextNonce: (account: Id.Id) => Effect.Effect<number>
  /** Takes an unrevealed mutual transfer for its receiver (checked, kept, gossiped); the rendezvous id. */
  readonly offer: (bytes: Uint8Array) => Effect.Effect<Id.Id, LedgerError>
  /** The offer held for a rendezvous. */
  readonly offerFor: (rendezvous: Id.Id) => Effect.Effect<Option.Option<Uint8Array>>
  /** Catches up from a peer's head object now (what gossip triggers); the blocks imported. */
  readonly catchUp: (peer: NodeId, head: Store.Id) => Effect.Effect<number, LedgerError>
  /** The store object of a recent block. */
  readonly objectOf: (block: Id.Id) => Effect.Effect<Option.Option<Store.Id>>
  readonly stats: Effect.Effect<Stats>
}

/** The ledger node service. */
export class LedgerNode extends Context.Tag("@weft/ledger/LedgerNode")<LedgerNode, Service>() {}

/** What the ledger node needs from the node and the ledger layers. */
export type Requirements =
  | Gossip.Gossip
  | Store.Store
  | StoreSync.StoreSync
  | LedgerStore
  | Consensus.Consensus
  | LedgerLimits.LedgerLimits
  | Limits.Limits
  | Identity.NodeIdentity

/** Room in a gossip message or store object for everything around a block's transactions. */
const blockOverheadBytes = 8192

const publishQuietly = (runtime: Runtime.Runtime, gossip: Gossip.Gossip["Type"], topic: string, data: Uint8Array) =>
  gossip.publish(topic, data).pipe(
    Effect.catchAll((error) => Effect.sync(() => {
      // NoPeers still delivered locally and will be announced: not a failure worth counting.
      if (error.reason !== "NoPeers") runtime.counters.publishFailures++
    }))
  )

const setup = (options: Options) =>
  Effect.gen(function*() {
    const limits = yield* LedgerLimits.LedgerLimits
    const core = yield* Limits.Limits
    const consensus = yield* Consensus.Consensus
    const chain: NodeCatchUp.CatchUp = {
      runtime: Runtime.make(consensus.genesis, limits),
      consensus,
      ledger: yield* LedgerStore,
      store: yield* Store.Store,
      sync: yield* StoreSync.StoreSync,
      locked: Effect.unsafeMakeSemaphore(1).withPermits(1)
    }
    const bytesMax = Math.min(limits.blockBytesMax, core.gossipMessageBytesMax, core.storeObjectBytesMax) - blockOverheadBytes
    return { chain, gossip: yield* Gossip.Gossip, self: (yield* Identity.NodeIdentity).id, bytesMax, topics: Wire.topics(consensus.genesis.params.chainId) }
  })

type Setup = Effect.Effect.Success<ReturnType<typeof setup>>

/** Genesis into the store and the content store, then the stored chain replayed into consensus. */
const start = ({ chain }: Setup) =>
  Effect.gen(function*() {
    const genesisBlock = Block.genesisBlock(chain.runtime.genesis)
    const genesisId = Block.id(genesisBlock.header)
    const bytes = yield* Block.encode(genesisBlock)
    yield* chain.ledger.initGenesis(chain.runtime.genesis.params, chain.runtime.genesis.allocations, { id: Buffer.from(genesisId, "hex"), bytes })
    yield* NodeChain.storeObject(chain, genesisBlock, genesisId)
    const head = yield* chain.consensus.head
    chain.runtime.headState = head.state
    yield* NodeChain.replay(chain, yield* Clock.currentTimeMillis)
  })

const produceOnce = (setup: Setup, authority: Account.Account) =>
  setup.chain.locked(
    setup.chain.consensus.produce(authority, (state) =>
      Mempool.take(setup.chain.runtime.pool, state, setup.chain.runtime.genesis.params, setup.chain.runtime.limits.transactionsPerBlockMax, setup.bytesMax)).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (imported) => NodeChain.afterImport(setup.chain, imported)
        }))
      )
  ).pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.void,
      onSome: (object) =>
        Effect.flatMap(setup.chain.store.get(object).pipe(Effect.orDie), (bytes) =>
          Option.isNone(bytes) ? Effect.void : Effect.zipRight(
            Effect.sync(() => void setup.chain.runtime.counters.blocksProduced++),
            publishQuietly(setup.chain.runtime, setup.gossip, setup.topics.blocks, bytes.value)
          ))
    })),
    Effect.catchAll((error) => Effect.logWarning(`ledger: producing a block failed: ${error.reason} ${error.detail ?? ""}`))
  )

/** Wakes at the start of each slot and produces when it is this authority's. */
const producer = (setup: Setup, authority: Account.Account) =>
  Effect.forever(Effect.gen(function*() {
    const genesis = setup.chain.runtime.genesis
    const nowMs = yield* Clock.currentTimeMillis
    const next = Consensus.slotStartMs(genesis, Math.max(Consensus.slotAt(genesis, nowMs), 0) + 1)
    yield* Effect.sleep(Duration.millis(Math.max(next - nowMs, 1)))
    yield* produceOnce(setup, authority)
  }))

const announcer = (setup: Setup, interval: Duration.Duration) =>
  Effect.forever(Effect.gen(function*() {
    yield* Effect.sleep(interval)
    const head = yield* setup.chain.consensus.head
    const object = setup.chain.runtime.objects.get(head.id)
    if (object === undefined || head.height === 0) return
    setup.chain.runtime.counters.headsAnnounced++
    const timeMs = yield* Clock.currentTimeMillis
    yield* publishQuietly(setup.chain.runtime, setup.gossip, setup.topics.heads, Wire.encodeHead({ object, height: head.height, timeMs }))
  }))

/** Imports blocks the validator accepted (decoding again only if the validator's copy was dropped). */
const importer = (setup: Setup, messages: Stream.Stream<Gossip.Message>, checked: Map<string, NodeGossip.Checked>) =>
  Stream.runForEach(messages, (message) =>
    Effect.gen(function*() {
      if (message.from === setup.self) return
      const held = checked.get(message.id)
      checked.delete(message.id)
      const nowMs = yield* Clock.currentTimeMillis
      const block = held?.block ?? Either.getOrUndefined(Either.flatMap(
        Wire.decodeObject(message.data, setup.chain.runtime.limits.blockBytesMax + 1024),
        (decoded) => Block.decode(decoded.blockBytes, setup.chain.runtime.genesis, nowMs, setup.chain.runtime.limits)
      ))
      if (block === undefined) return
      yield* setup.chain.locked(NodeChain.importBlock(setup.chain, block)).pipe(
        Effect.catchAll((error) => Effect.sync(() => {
          setup.chain.runtime.counters.blocksRejected++
          Runtime.refused(setup.chain.runtime, "block", error.reason)
        }))
      )
    }))

interface Request {
  readonly peer: NodeId
  readonly head: Store.Id
}

const catchUpWorker = (setup: Setup, queue: Queue.Queue<Request>) =>
  Effect.forever(Effect.flatMap(Queue.take(queue), (request) =>
    NodeCatchUp.catchUp(setup.chain, request.peer, request.head).pipe(
      Effect.catchAll((error) => Effect.logDebug(`ledger: catch-up from ${request.peer.slice(0, 10)} failed: ${error.reason} ${error.detail ?? ""}`))
    )))

/** Whether the mempool holds a Mint of the account (ours, or one its owner sent with `weft token mint all`). */
const claimWaiting = (pool: Mempool.Mempool, account: Id.Id): boolean => {
  const queue = pool.byAccount.get(account)
  if (queue === undefined) return false
  for (const item of queue.values()) if (item.tx.body._tag === "Mint") return true
  return false
}

/** One check for rewards to claim: signs and submits a Mint of all of them when some accrued and no claim of the account waits. */
const claimOnce = (setup: Setup, authority: Account.Account, claims: { lastHeight: number }, height: number) =>
  Effect.gen(function*() {
    const { runtime } = setup.chain
    if (height < claims.lastHeight + runtime.limits.autoClaimIntervalBlocks) return
    if (claimWaiting(runtime.pool, authority.id)) return
    const planned = Wallet.planClaim(runtime.headState, authority.id, runtime.genesis.params)
    if (Either.isLeft(planned)) return
    claims.lastHeight = height
    const signed = Either.flatMap(Transaction.sign({ ...planned.right, nonce: Runtime.nextNonce(runtime, authority.id) }, authority), (tx) => Transaction.encode(tx))
    if (Either.isLeft(signed)) return yield* Effect.logWarning(`ledger: cannot sign a reward claim: ${signed.left.reason}`)
    yield* submit(setup)(signed.right)
    runtime.counters.claimsSubmitted++
  }).pipe(Effect.catchAll((error) => Effect.logDebug(`ledger: the automatic reward claim was refused: ${error.reason} ${error.detail ?? ""}`)))

/** Claims the authority's rewards as heads arrive (the latest head only: a slow check skips the ones in between). */
const autoClaimer = (setup: Setup, authority: Account.Account) =>
  Effect.gen(function*() {
    const heads = yield* Queue.sliding<number>(1)
    setup.chain.runtime.onHead = (height) => void Queue.unsafeOffer(heads, height)
    yield* Effect.addFinalizer(() => Effect.sync(() => void (setup.chain.runtime.onHead = undefined)))
    const claims = { lastHeight: Number.NEGATIVE_INFINITY }
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(heads), (height) => claimOnce(setup, authority, claims, height))))
  })

/** Subscribes, installs the validators and starts the node's fibers, for the life of the scope. */
const run = (setup: Setup, options: Options): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { chain, gossip, topics } = setup
    const queue = yield* Queue.dropping<Request>(chain.runtime.limits.catchUpQueueMax)
    const checked = new Map<string, NodeGossip.Checked>()
    const clock = yield* Effect.clock
    const hooks: NodeGossip.Hooks = {
      self: setup.self,
      runtime: chain.runtime,
      now: () => clock.unsafeCurrentTimeMillis(),
      checked,
      catchUp: (peer, head) => {
        if (!Queue.unsafeOffer(queue, { peer, head })) chain.runtime.counters.catchUpDropped++
      }
    }
    yield* gossip.validate(topics.blocks, NodeGossip.blocks(hooks))
    yield* gossip.validate(topics.transactions, NodeGossip.transactions(hooks))
    yield* gossip.validate(topics.heads, NodeGossip.heads(hooks, () => chain.runtime.headHeight))
    yield* gossip.validate(topics.offers, NodeGossip.offers(hooks))
    const subscribe = (topic: string) => Effect.orDie(gossip.subscribe(topic))
    const blocks = yield* subscribe(topics.blocks)
    for (const topic of [topics.transactions, topics.heads, topics.offers]) yield* Effect.forkScoped(Stream.runDrain(yield* subscribe(topic)))
    yield* Effect.forkScoped(importer(setup, blocks, checked))
    yield* Effect.forkScoped(catchUpWorker(setup, queue))
    const interval = Duration.decode(options.announceInterval ?? Duration.millis(chain.runtime.genesis.params.blockTimeMs))
    yield* Effect.forkScoped(announcer(setup, interval))
    if (options.authority !== undefined) yield* Effect.forkScoped(producer(setup, options.authority))
    if (options.authority !== undefined && options.autoClaim !== false) yield* autoClaimer(setup, options.authority)
  })

const submit = (setup: Setup) => (bytes: Uint8Array): Effect.Effect<Id.Id, LedgerError> =>
  Effect.gen(function*() {
    const { runtime } = setup.chain
    const result = Either.flatMap(Transaction.decode(bytes, runtime.limits), (tx) => Mempool.add(runtime.pool, tx, runtime.headState, runtime.genesis.params))
    if (Either.isLeft(result)) {
      runtime.counters.transactionsRejected++
      Runtime.refused(runtime, "submit", result.left.reason)
      return yield* Effect.fail(result.left)
    }
    runtime.counters.transactionsAccepted++
    yield* publishQuietly(runtime, setup.gossip, setup.topics.transactions, bytes)
    return result.right
  })

const offer = (setup: Setup) => (bytes: Uint8Array): Effect.Effect<Id.Id, LedgerError> =>
  Effect.gen(function*() {
    const { runtime } = setup.chain
    const checked = NodeGossip.checkOffer(bytes, runtime)
    if (Either.isLeft(checked)) {
      runtime.counters.offersRejected++
      Runtime.refused(runtime, "offer", checked.left.reason)
      return yield* Effect.fail(checked.left)
    }
    if (!HashMap.has(runtime.headState.rendezvous, checked.right.rendezvous)) {
      Runtime.refused(runtime, "offer", "RendezvousNotFound")
      return yield* Effect.fail(fail("RendezvousNotFound", `no open rendezvous 0x${checked.right.rendezvous} at the head`))
    }
    runtime.offers.set(checked.right.rendezvous, bytes)
    runtime.counters.offersAccepted++
    yield* publishQuietly(runtime, setup.gossip, setup.topics.offers, bytes)
    return checked.right.rendezvous
  })

const stats = (setup: Setup): Effect.Effect<Stats> =>
  Effect.gen(function*() {
    const head = yield* setup.chain.consensus.head
    const finalized = yield* setup.chain.consensus.finalized
    const { runtime } = setup.chain
    return {
      ...runtime.counters,
      height: head.height,
      finalizedHeight: finalized.height,
      mempoolTransactions: Mempool.size(runtime.pool),
      reasons: Object.fromEntries(runtime.reasons)
    }
  })

/** Builds the ledger node and runs it for the life of the scope. */
export const make = (options: Options): Effect.Effect<Service, LedgerError, Requirements | Scope.Scope> =>
  Effect.gen(function*() {
    const built = yield* setup(options)
    yield* start(built)
    yield* run(built, options)
    const { chain } = built
    return LedgerNode.of({
      genesis: chain.runtime.genesis,
      params: chain.runtime.genesis.params,
      head: chain.consensus.head,
      finalized: chain.consensus.finalized,
      state: Effect.sync(() => chain.runtime.headState),
      submit: submit(built),
      included: (txId) => Effect.sync(() => Option.fromNullable(chain.runtime.included.get(txId))),
      pending: (txId) => Effect.sync(() => Mempool.has(chain.runtime.pool, txId)),
      nextNonce: (account) => Effect.sync(() => Runtime.nextNonce(chain.runtime, account)),
      offer: offer(built),
      offerFor: (rendezvous) => Effect.sync(() => Option.fromNullable(chain.runtime.offers.get(rendezvous))),
      catchUp: (peer, head) => NodeCatchUp.catchUp(chain, peer, head),
      objectOf: (block) => Effect.sync(() => Option.fromNullable(chain.runtime.objects.get(block))),
      stats: stats(built)
    })
  })

/** The ledger node as a layer over a node, a content store with sync, a ledger store and a consensus. */
export const layer = (options: Options): Layer.Layer<LedgerNode, LedgerError, Requirements> => Layer.scoped(LedgerNode, make(options))

/** A genesis as the JSON text of a genesis file (amounts as decimal base units, keys as hex). */
export const genesisToJson: (genesis: Block.Genesis) => string = NodeGenesis.toJson

/** Parses and checks a genesis file's text. */
export const genesisFromJson: (text: string) => Either.Either<Block.Genesis, LedgerError> = NodeGenesis.fromJson
