/**
 * A ledger node's mutable runtime: the mempool, the recent block → object map, recent inclusions,
 * mutual-transfer offers, the head's state, and the counters. Owned by one node; the gossip
 * validators read and write it synchronously on the receive path, everything else through Effects.
 */
import { Store } from "@weft/core"
import type * as Block from "../Block.js"
import type * as Id from "../Id.js"
import type * as LedgerLimits from "../LedgerLimits.js"
import * as Mempool from "../Mempool.js"
import * as State from "../State.js"
import { Recent } from "./nodeWire.js"

/** What a node counts; every drop and rejection has one. */
export interface Counters {
  blocksProduced: number
  blocksImported: number
  blocksRejected: number
  blocksIgnored: number
  transactionsAccepted: number
  transactionsRejected: number
  transactionsIgnored: number
  headsAnnounced: number
  headsRejected: number
  offersAccepted: number
  offersRejected: number
  reorgs: number
  storeFollowFailures: number
  catchUpRounds: number
  catchUpBlocksFetched: number
  catchUpBlocksImported: number
  catchUpFailures: number
  catchUpDropped: number
  publishFailures: number
  /** Reward claims this authority node submitted on its own (`autoClaim`). */
  claimsSubmitted: number
}

/** A fresh set of counters. */
export const counters = (): Counters => ({
  blocksProduced: 0,
  blocksImported: 0,
  blocksRejected: 0,
  blocksIgnored: 0,
  transactionsAccepted: 0,
  transactionsRejected: 0,
  transactionsIgnored: 0,
  headsAnnounced: 0,
  headsRejected: 0,
  offersAccepted: 0,
  offersRejected: 0,
  reorgs: 0,
  storeFollowFailures: 0,
  catchUpRounds: 0,
  catchUpBlocksFetched: 0,
  catchUpBlocksImported: 0,
  catchUpFailures: 0,
  catchUpDropped: 0,
  publishFailures: 0,
  claimsSubmitted: 0
})

/** The runtime of one node. */
export interface Runtime {
  readonly genesis: Block.Genesis
  readonly limits: LedgerLimits.Values
  readonly pool: Mempool.Mempool
  /** Block id → the block's store object id, for every block imported recently. */
  readonly objects: Recent<Id.Id, Store.Id>
  /** Store object id (hex) → block id: the reverse of `objects`. */
  readonly blocksByObject: Recent<string, Id.Id>
  /** Transaction id → height of the head-chain block that includes it. */
  readonly included: Recent<Id.Id, number>
  /** Rendezvous id → an unrevealed mutual transfer's canonical bytes. */
  readonly offers: Recent<Id.Id, Uint8Array>
  /** Why things were refused: `"<what>/<reason>"` → count. */
  readonly reasons: Map<string, number>
  readonly counters: Counters
  headState: State.State
  headHeight: number
  /** Told the new head's height after each import (the automatic reward claim listens). */
  onHead: ((height: number) => void) | undefined
}

/** A runtime over a genesis. */
export const make = (genesis: Block.Genesis, limits: LedgerLimits.Values): Runtime => ({
  genesis,
  limits,
  pool: Mempool.make(limits),
  objects: new Recent(limits.knownBlocksMax),
  blocksByObject: new Recent(limits.knownBlocksMax),
  included: new Recent(limits.includedTransactionsMax),
  offers: new Recent(limits.mutualOffersMax),
  reasons: new Map(),
  counters: counters(),
  headState: State.empty,
  headHeight: 0,
  onHead: undefined
})

/** Counts a refusal by what was refused and why. */
export const refused = (runtime: Runtime, what: string, reason: string): void => {
  const key = `${what}/${reason}`
  runtime.reasons.set(key, (runtime.reasons.get(key) ?? 0) + 1)
}

/** Records a block's store object. */
export const remember = (runtime: Runtime, block: Id.Id, object: Store.Id): void => {
  runtime.objects.set(block, object)
  runtime.blocksByObject.set(Store.toHex(object), block)
}

/** The next nonce an account may sign: after its head nonce and any nonce the mempool holds. */
export const nextNonce = (runtime: Runtime, account: Id.Id): number => {
  let nonce = State.reader(runtime.headState).nonce(account)
  const queue = runtime.pool.byAccount.get(account)
  if (queue !== undefined) for (const held of queue.keys()) nonce = Math.max(nonce, held)
  return nonce + 1
}
