/**
 * The ledger's RPC group, served by a ledger node for local tools (the `weft token` CLI calls it
 * through the node's control socket, `Control.Call` with service `"Ledger"`) and for peers.
 *
 * The node never holds a user's key: tools read what they need (`Account`: nonce and coins), build
 * and sign transactions themselves, and `Submit` the signed bytes. Amounts cross as decimal strings of
 * base units (`Schema.BigInt`), so they survive any serialization exactly.
 *
 * Two views of value: `Account` reads the head's state (what the next block builds on; `weft token
 * balance` and `coins`), `History` reads the explorer index, which holds finalized blocks only (every
 * entry is final; a transaction in a block that is not final yet appears once its block is).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { NodeRpc } from "@weft/core"
import { Effect, Either, HashMap, Layer, Option, Schema } from "effect"
import * as Explorer from "./Explorer.js"
import * as Id from "./Id.js"
import { LedgerError } from "./LedgerError.js"
import { LedgerNode } from "./LedgerNode.js"
import * as Wallet from "./Wallet.js"

/** The service name tools call. */
export const serviceName = "Ledger"

/** Longest wait of one `OfferFor` call, so a call always ends well within the node's call timeout. */
export const offerWaitMsMax = 5_000

const offerPollInterval = "100 millis"

const AccountId = Schema.String.pipe(Schema.pattern(/^(0x)?[0-9a-fA-F]{64}$/))

/** The chain and the node's view of it. */
export const Status = Schema.Struct({
  chainId: Schema.String,
  symbol: Schema.String,
  unitsPerToken: Schema.BigInt,
  blockTimeMs: Schema.Number,
  height: Schema.Number,
  head: Schema.String,
  finalizedHeight: Schema.Number,
  finalized: Schema.String,
  mempoolTransactions: Schema.Number,
  counters: Schema.Record({ key: Schema.String, value: Schema.Number })
})

/** A coin as tools see it. */
export const CoinView = Schema.Struct({ id: Schema.String, amount: Schema.BigInt })

/** A pending transaction as tools see it. */
export const PendingView = Schema.Struct({ id: Schema.String, amount: Schema.BigInt, recipient: Schema.String, refund: Schema.String })

/** What an account holds at the head, and the nonce its next transaction carries. */
export const AccountView = Schema.Struct({
  account: Schema.String,
  nextNonce: Schema.Number,
  spendable: Schema.BigInt,
  incoming: Schema.BigInt,
  unclaimed: Schema.BigInt,
  coins: Schema.Array(CoinView),
  pendingIn: Schema.Array(PendingView),
  pendingOut: Schema.Array(PendingView),
  height: Schema.Number
})

/** Where a transaction is. */
export const TxStatus = Schema.Struct({
  state: Schema.Literal("included", "pending", "unknown"),
  height: Schema.NullOr(Schema.Number),
  finalized: Schema.Boolean
})

/** One history entry (`Explorer.Entry`); `final` is always true (the explorer folds finalized blocks only), kept for tools that read it. */
export const HistoryEntry = Schema.Struct({
  height: Schema.Number,
  index: Schema.Number,
  txId: Schema.String,
  kind: Schema.String,
  delta: Schema.BigInt,
  counterparty: Schema.NullOr(Schema.String),
  final: Schema.Boolean
})

/** A rendezvous as tools see it. */
export const RendezvousView = Schema.Struct({ id: Schema.String, receiver: Schema.String, amount: Schema.BigInt })

/** The ledger RPCs. */
export class LedgerRpcs extends RpcGroup.make(
  Rpc.make("LedgerStatus", { success: Status }),
  Rpc.make("Account", { payload: { account: AccountId }, success: AccountView, error: LedgerError }),
  Rpc.make("Submit", { payload: { tx: Schema.Uint8ArrayFromSelf }, success: Schema.String, error: LedgerError }),
  Rpc.make("TxStatus", { payload: { id: AccountId }, success: TxStatus, error: LedgerError }),
  Rpc.make("History", {
    payload: { account: AccountId, fromHeight: Schema.optional(Schema.Number), fromIndex: Schema.optional(Schema.Number), limit: Schema.Number },
    success: Schema.Struct({ entries: Schema.Array(HistoryEntry), nextHeight: Schema.NullOr(Schema.Number), nextIndex: Schema.NullOr(Schema.Number) }),
    error: LedgerError
  }),
  Rpc.make("Reindex", { success: Schema.Struct({ blocks: Schema.Number, digest: Schema.String, before: Schema.String }) }),
  Rpc.make("Rendezvous", { payload: { id: AccountId }, success: Schema.NullOr(RendezvousView), error: LedgerError }),
  Rpc.make("Offer", { payload: { tx: Schema.Uint8ArrayFromSelf }, success: Schema.String, error: LedgerError }),
  Rpc.make("OfferFor", { payload: { rendezvous: AccountId, waitMs: Schema.Number }, success: Schema.NullOr(Schema.Uint8ArrayFromSelf), error: LedgerError })
) {}

const parseId = (text: string): Effect.Effect<Id.Id, LedgerError> => Either.match(Id.parse(text), { onLeft: Effect.fail, onRight: Effect.succeed })

const pendingView = (view: Wallet.PendingView) => ({
  id: Id.display(view.id),
  amount: view.amount as bigint,
  recipient: Id.display(view.pending.recipient),
  refund: Id.display(view.pending.refund)
})

const accountView = (node: LedgerNode["Type"], account: Id.Id) =>
  Effect.gen(function*() {
    const state = yield* node.state
    const head = yield* node.head
    const balance = Wallet.balance(state, account)
    const pending = Wallet.pending(state, account)
    return {
      account: Id.display(account),
      nextNonce: yield* node.nextNonce(account),
      spendable: balance.spendable as bigint,
      incoming: balance.incoming as bigint,
      unclaimed: balance.unclaimed as bigint,
      coins: Wallet.coins(state, account).map(({ coin, id }) => ({ id: Id.display(id), amount: coin.amount as bigint })),
      pendingIn: pending.incoming.map(pendingView),
      pendingOut: pending.outgoing.map(pendingView),
      height: head.height
    }
  })

const txStatus = (node: LedgerNode["Type"], id: Id.Id) =>
  Effect.gen(function*() {
    const finalized = yield* node.finalized
    const height = yield* node.included(id)
    if (Option.isSome(height)) return { state: "included" as const, height: height.value, finalized: height.value <= finalized.height }
    return { state: (yield* node.pending(id)) ? "pending" as const : "unknown" as const, height: null, finalized: false }
  })

const history = (node: LedgerNode["Type"], explorer: Explorer.Explorer["Type"], payload: { account: string; fromHeight?: number | undefined; fromIndex?: number | undefined; limit: number }) =>
  Effect.gen(function*() {
    const account = yield* parseId(payload.account)
    const finalized = yield* node.finalized
    const from = payload.fromHeight === undefined ? {} : { from: { height: payload.fromHeight, index: payload.fromIndex ?? 0 } }
    const page = yield* explorer.history(account, { ...from, limit: payload.limit })
    return {
      entries: page.entries.map((entry) => ({
        height: entry.height,
        index: entry.index,
        txId: Id.display(entry.txId),
        kind: entry.kind,
        delta: entry.delta,
        counterparty: entry.counterparty === undefined ? null : Id.display(entry.counterparty),
        final: entry.height <= finalized.height
      })),
      nextHeight: page.next?.height ?? null,
      nextIndex: page.next?.index ?? null
    }
  })

/** Reindexes the explorer: the blocks folded and the index digests before and after (equal: the rebuild reproduced the index byte for byte). */
const reindex = (explorer: Explorer.Explorer["Type"]) =>
  Effect.gen(function*() {
    const before = yield* explorer.digest
    const result = yield* explorer.reindex
    return { blocks: result.blocks, digest: Buffer.from(result.digest).toString("hex"), before: Buffer.from(before).toString("hex") }
  })

/** Polls for an offer until it arrives or `waitMs` (at most `offerWaitMsMax`) has passed: a long poll. */
const offerFor = (node: LedgerNode["Type"], rendezvous: string, waitMs: number) =>
  Effect.gen(function*() {
    const id = yield* parseId(rendezvous)
    const deadline = Math.min(Math.max(Number.isFinite(waitMs) ? waitMs : 0, 0), offerWaitMsMax)
    const poll: Effect.Effect<Uint8Array> = Effect.flatMap(node.offerFor(id), Option.match({
      onNone: () => Effect.zipRight(Effect.sleep(offerPollInterval), Effect.suspend(() => poll)),
      onSome: Effect.succeed
    }))
    return yield* poll.pipe(Effect.timeoutOption(deadline), Effect.map(Option.getOrNull))
  })

const handlers = Effect.gen(function*() {
  const node = yield* LedgerNode
  const explorer = yield* Explorer.Explorer
  return LedgerRpcs.of({
    LedgerStatus: () =>
      Effect.gen(function*() {
        const head = yield* node.head
        const finalized = yield* node.finalized
        const stats = yield* node.stats
        const { reasons: _reasons, ...counters } = stats
        return {
          chainId: node.params.chainId,
          symbol: node.params.symbol,
          unitsPerToken: node.params.unitsPerToken,
          blockTimeMs: node.params.blockTimeMs,
          height: head.height,
          head: Id.display(head.id),
          finalizedHeight: finalized.height,
          finalized: Id.display(finalized.id),
          mempoolTransactions: stats.mempoolTransactions,
          counters
        }
      }),
    Account: ({ account }) => Effect.flatMap(parseId(account), (id) => accountView(node, id)),
    Submit: ({ tx }) => Effect.map(node.submit(tx), Id.display),
    TxStatus: ({ id }) => Effect.flatMap(parseId(id), (txId) => txStatus(node, txId)),
    History: (payload) => history(node, explorer, payload),
    Reindex: () => reindex(explorer),
    Rendezvous: ({ id }) =>
      Effect.flatMap(parseId(id), (rendezvous) =>
        Effect.map(node.state, (state) =>
          Option.match(HashMap.get(state.rendezvous, rendezvous), {
            onNone: () => null,
            onSome: (found) => ({ id: Id.display(rendezvous), receiver: Id.display(found.receiver), amount: found.amount as bigint })
          }))),
    Offer: ({ tx }) => Effect.map(node.offer(tx), Id.display),
    OfferFor: ({ rendezvous, waitMs }) => offerFor(node, rendezvous, waitMs)
  })
})

/** Serves the ledger RPCs on the node (needs the ledger node and its explorer). */
export const layer = NodeRpc.serve(LedgerRpcs, handlers, { name: serviceName })

/** The explorer's view of the node's store, plus the RPCs: what a node build adds after `LedgerNode.layer`. */
export const layerWithExplorer = layer.pipe(Layer.provide(Explorer.layer))
