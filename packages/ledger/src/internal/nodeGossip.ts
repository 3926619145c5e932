/**
 * The gossip validators of a ledger node: synchronous checks on the receive path, before a message is
 * delivered or forwarded. What is provably bad whatever this node's view (undecodable bytes, a bad
 * signature, a block from an authority that does not own the slot, a transaction for another chain)
 * is "reject", which gossip counts against the sender; what depends on this node's view (an unknown
 * parent, a nonce already used, a spent coin) is "ignore". A block with an unknown parent also asks
 * for a catch-up from the peer that sent it.
 */
import type { Gossip, NodeId as NodeIds } from "@weft/core"
import { Canonical, Store } from "@weft/core"
import { Either, Schema } from "effect"
import * as Account from "../Account.js"
import * as Block from "../Block.js"
import * as Id from "../Id.js"
import type { LedgerError } from "../LedgerError.js"
import { make as fail } from "../LedgerError.js"
import * as Mempool from "../Mempool.js"
import * as Transaction from "../Transaction.js"
import type { Runtime } from "./nodeState.js"
import { refused } from "./nodeState.js"
import { decodeHead, decodeObject, provablyBad } from "./nodeWire.js"

type NodeId = NodeIds.NodeId

/** A block that passed its validator, kept for the subscriber so it is not decoded twice. */
export interface Checked {
  readonly block: Block.Verified
  readonly object: Store.Id
}

/** What the validators need from the node. */
export interface Hooks {
  readonly self: NodeId
  readonly runtime: Runtime
  readonly now: () => number
  readonly catchUp: (peer: NodeId, object: Store.Id) => void
  readonly checked: Map<string, Checked>
}

const verdictFor = (runtime: Runtime, what: string, error: LedgerError): Gossip.Verdict => {
  refused(runtime, what, error.reason)
  return provablyBad(error) ? "reject" : "ignore"
}

/** The blocks topic: decode the object and the block; an unknown parent is a catch-up. */
export const blocks = (hooks: Hooks): Gossip.Validator => (message) => {
  if (message.from === hooks.self) return "accept"
  const { runtime } = hooks
  const opened = Either.flatMap(decodeObject(message.data, runtime.limits.blockBytesMax + 1024), (decoded) =>
    Block.decode(decoded.blockBytes, runtime.genesis, hooks.now(), runtime.limits))
  if (Either.isLeft(opened)) {
    const verdict = verdictFor(runtime, "block", opened.left)
    if (verdict === "reject") runtime.counters.blocksRejected++
    else runtime.counters.blocksIgnored++
    return verdict
  }
  const block = opened.right
  const id = Block.id(block.header)
  if (runtime.objects.has(id)) return "ignore"
  const object = Store.idOf(message.data)
  if (!runtime.objects.has(Id.fromBytes(block.header.parent))) {
    runtime.counters.blocksIgnored++
    refused(runtime, "block", "UnknownParent")
    hooks.catchUp(message.from, object)
    return "ignore"
  }
  // Bounded by the subscriber draining it; a burst beyond that is dropped (the block is re-fetched by catch-up if needed).
  if (hooks.checked.size < runtime.limits.checkedBlocksMax) hooks.checked.set(message.id, { block, object })
  return "accept"
}

/** The transactions topic: the edge decode, then mempool admission against the head. */
export const transactions = (hooks: Hooks): Gossip.Validator => (message) => {
  if (message.from === hooks.self) return "accept"
  const { runtime } = hooks
  const added = Either.flatMap(Transaction.decode(message.data, runtime.limits), (tx) => Mempool.add(runtime.pool, tx, runtime.headState, runtime.genesis.params))
  if (Either.isRight(added)) {
    runtime.counters.transactionsAccepted++
    return "accept"
  }
  const verdict = verdictFor(runtime, "transaction", added.left)
  if (verdict === "reject") runtime.counters.transactionsRejected++
  else runtime.counters.transactionsIgnored++
  return verdict
}

/** The heads topic: a head above ours that we do not hold is a catch-up from the sender. */
export const heads = (hooks: Hooks, headHeight: () => number): Gossip.Validator => (message) => {
  if (message.from === hooks.self) return "accept"
  const decoded = decodeHead(message.data)
  if (Either.isLeft(decoded)) {
    hooks.runtime.counters.headsRejected++
    refused(hooks.runtime, "head", decoded.left.reason)
    return "reject"
  }
  const head = decoded.right
  if (head.height <= headHeight() || hooks.runtime.blocksByObject.has(Store.toHex(head.object))) return "ignore"
  hooks.catchUp(message.from, head.object)
  return "accept"
}

const decodeTransaction = Schema.decodeUnknownEither(Transaction.Transaction, { onExcessProperty: "error" })

/** Checks an unrevealed mutual transfer: this chain, its signer's key in it, a valid signature. */
export const checkOffer = (bytes: Uint8Array, runtime: Runtime): Either.Either<{ readonly rendezvous: Id.Id; readonly tx: Transaction.Transaction }, LedgerError> =>
  Either.gen(function*() {
    const value = yield* Either.mapLeft(Canonical.decode(bytes, runtime.limits.transactionBytesMax), () => fail("Malformed", "an offer does not decode"))
    const tx = yield* Either.mapLeft(decodeTransaction(value), (error) => fail("Malformed", error.message.slice(0, 300)))
    const body = tx.body
    if (body._tag !== "MutualTransfer" || tx.reveal !== undefined) return yield* Either.left(fail("Malformed", "an offer is an unrevealed MutualTransfer"))
    if (body.chain !== runtime.genesis.params.chainId) return yield* Either.left(fail("WrongChain", `an offer for chain ${JSON.stringify(body.chain.slice(0, 64))}`))
    const key = tx.auth.publicKey
    if (key === undefined || key.length !== Account.publicKeyBytes || Account.idOf(key) !== Transaction.sender(body)) return yield* Either.left(fail("BadKey", "an offer carries its sender's public key"))
    const id = yield* Transaction.id(body)
    if (!Account.verify(key, Transaction.signingMessage(id), tx.auth.signature)) return yield* Either.left(fail("BadSignature", "the offer's signature does not verify"))
    return { rendezvous: Id.fromBytes(body.rendezvous), tx }
  })

/** The offers topic: keep checked offers for their receivers. */
export const offers = (hooks: Hooks): Gossip.Validator => (message) => {
  if (message.from === hooks.self) return "accept"
  const checked = checkOffer(message.data, hooks.runtime)
  if (Either.isLeft(checked)) {
    hooks.runtime.counters.offersRejected++
    refused(hooks.runtime, "offer", checked.left.reason)
    return "reject"
  }
  hooks.runtime.counters.offersAccepted++
  hooks.runtime.offers.set(checked.right.rendezvous, message.data)
  return "accept"
}
