/**
 * Proof-of-authority consensus: round-robin slots over the genesis authority set, a fork choice, and a
 * finality rule safe with fewer than a third of the authorities faulty (the package README states the
 * rule and argues it). The rules are pure functions over an immutable block tree (`init`, `insert`,
 * `forkChoice`, `finalized`, `proposal`, `produce`), and the `Consensus` service wraps one tree for a
 * node, so another consensus can replace this one behind the same Tag.
 *
 * - slot s covers [genesis time + s·blockTime, +blockTime); its producer is authorities[s mod n];
 * - a block is valid only from its slot's producer, with a slot after its parent's, and not timed
 *   beyond the local clock plus `blockClockSkewMsMax`;
 * - an epoch is n slots (one per authority); a block votes for its epoch's checkpoint (the last block
 *   of its chain before the epoch), from the chain's justified checkpoint as the epoch began; a
 *   checkpoint with votes from more than 2/3 of the authorities in one chain is justified, and a
 *   justified checkpoint whose next epoch's checkpoint is justified from it is finalized;
 * - fork choice: among the blocks above the finalized one, the leaf with the latest justified
 *   checkpoint, then the most blocks, then the lowest id. A finalized block is never reverted: the
 *   tree keeps only its descendants.
 *
 * The tree lives in memory; a restarted node rebuilds it from its stored chain with `replay` (or
 * `make({ genesis, blocks })`).
 */
import { Clock, Context, Effect, Either, HashMap, Layer, Option, Ref } from "effect"
import type * as Account from "./Account.js"
import * as Block from "./Block.js"
import type * as Id from "./Id.js"
import * as Rules from "./internal/consensusRules.js"
import * as TreeImpl from "./internal/consensusTree.js"
import type { LedgerError } from "./LedgerError.js"
import * as LedgerLimits from "./LedgerLimits.js"
import type * as State from "./State.js"
import type * as Transaction from "./Transaction.js"

/** A checkpoint: a block as the boundary of an epoch. */
export type Checkpoint = TreeImpl.Checkpoint
/** A block in the tree, with its post-state and finality bookkeeping. */
export type Entry = TreeImpl.Entry
/** The block tree: every block above (and including) the node's finalized block. */
export type Tree = TreeImpl.Tree

/** The slot a time falls in (negative before genesis). */
export const slotAt: (genesis: Block.Genesis, timeMs: number) => number = Rules.slotAt
/** When a slot begins. */
export const slotStartMs: (genesis: Block.Genesis, slot: number) => number = Rules.slotStartMs
/** The producer of a slot: `authorities[slot mod n]`. */
export const producerOf: (genesis: Block.Genesis, slot: number) => Block.Authority = Rules.producerOf
/** The epoch of a slot (n slots per epoch). */
export const epochOf: (genesis: Block.Genesis, slot: number) => number = Rules.epochOf
/** Votes needed to justify a checkpoint: more than two thirds of `authorities`. */
export const quorum: (authorities: number) => number = Rules.quorum

/** A tree holding only the genesis block (whose state is the genesis allocations). */
export const init = (genesis: Block.Genesis, limits: LedgerLimits.Values = LedgerLimits.defaults): Either.Either<Tree, LedgerError> => {
  const block = Block.genesisBlock(genesis)
  return TreeImpl.init(genesis, block, Block.id(block.header), limits)
}

/** What `insert` did: the new tree and the block's entry. */
export interface Inserted {
  readonly tree: Tree
  readonly entry: Entry
}

/**
 * Adds a checked block: Duplicate if known, UnknownParent if its parent is missing (fetch it and
 * retry), Stale if it cannot descend from the finalized block, BadSlot if its height or slot does not
 * follow its parent, TooLarge past `unfinalizedBlocksMax`, or the transaction's rejection (with its
 * index) if the block does not apply to its parent's state.
 */
export const insert = (tree: Tree, block: Block.Verified): Either.Either<Inserted, LedgerError> =>
  TreeImpl.insert(tree, block, Block.id(block.header))

/** The head: the leaf with the latest justified checkpoint, then the most blocks, then the lowest id. */
export const forkChoice = (tree: Tree): Entry => TreeImpl.entry(tree, tree.head)

/** The node's finalized block (the tree's root). */
export const finalized = (tree: Tree): Entry => TreeImpl.entry(tree, tree.root.id)

/** The node's finalized checkpoint (epoch and block). */
export const finalizedCheckpoint = (tree: Tree): Checkpoint => tree.root

/** A block of the tree, if held. */
export const get = (tree: Tree, id: Id.Id): Option.Option<Entry> => HashMap.get(tree.entries, id)

/** Blocks held (the finalized one and everything above it). */
export const size = (tree: Tree): number => HashMap.size(tree.entries)

/** The entries from `id` down to the root, newest first. */
export const chain = (tree: Tree, id: Id.Id): ReadonlyArray<Entry> => {
  const out: Array<Entry> = []
  for (let at = HashMap.get(tree.entries, id); Option.isSome(at); at = at.value.id === tree.root.id ? Option.none() : HashMap.get(tree.entries, at.value.parent)) {
    out.push(at.value)
  }
  return out
}

/** Where an authority may build now: its slot, the head to build on, and the vote's source epoch. */
export interface Proposal {
  readonly slot: number
  readonly parent: Entry
  readonly sourceEpoch: number
}

/**
 * Whether `authority` produces at `nowMs`: it must own the slot, the head must be from an earlier slot,
 * and the new block's vote must not link from a source older than the last one this node voted from
 * (the lock that keeps an honest authority from casting surrounding votes).
 */
export const proposal = (tree: Tree, authority: Id.Id, nowMs: number): Option.Option<Proposal> => {
  const slot = Rules.slotAt(tree.genesis, nowMs)
  if (slot < 1 || Rules.producerOf(tree.genesis, slot).id !== authority) return Option.none()
  const parent = forkChoice(tree)
  if (parent.slot >= slot) return Option.none()
  const sourceEpoch = TreeImpl.derive(tree.genesis, parent, slot).source.epoch
  return sourceEpoch < tree.lockEpoch ? Option.none() : Option.some({ slot, parent, sourceEpoch })
}

/**
 * Builds, signs and inserts this authority's block for the slot at `nowMs`, with the transactions
 * `select` picks from the head's state; none when it is not this authority's turn (see `proposal`).
 */
export const produce = (
  tree: Tree,
  producer: Account.Account,
  nowMs: number,
  select: (state: State.State) => ReadonlyArray<Transaction.Transaction>
): Either.Either<Option.Option<Inserted>, LedgerError> =>
  Option.match(proposal(tree, producer.id, nowMs), {
    onNone: () => Either.right(Option.none()),
    onSome: ({ parent, slot, sourceEpoch }) =>
      Block.make({ genesis: tree.genesis, parent, slot, timeMs: nowMs, txs: select(parent.state), producer }).pipe(
        Either.flatMap((block) => insert(tree, block)),
        Either.map((inserted) => Option.some({ ...inserted, tree: { ...inserted.tree, lockEpoch: sourceEpoch } }))
      )
  })

/**
 * A tree rebuilt from a node's stored chain (a restart): `blocks` in parent-first order, each
 * inserted as if received; a block already held (the genesis) is skipped. The tree prunes as the
 * replay finalizes, so memory stays bounded by the unfinalized tail. The lock is restored
 * conservatively to the head's justified epoch: an authority's last vote linked from a source no
 * later than that, as long as the store held each block's parent before the node built on it.
 */
export const replay = (
  genesis: Block.Genesis,
  blocks: Iterable<Block.Verified>,
  limits: LedgerLimits.Values = LedgerLimits.defaults
): Either.Either<Tree, LedgerError> =>
  Either.gen(function*() {
    let tree = yield* init(genesis, limits)
    for (const block of blocks) {
      const blockId = Block.id(block.header)
      if (HashMap.has(tree.entries, blockId)) continue
      tree = (yield* TreeImpl.insert(tree, block, blockId)).tree
    }
    return { ...tree, lockEpoch: Math.max(tree.lockEpoch, forkChoice(tree).justified.epoch) }
  })

/** Blocks a head change left and joined: `removed` from the old head down, `added` from the common ancestor up. */
export interface Reorg {
  readonly removed: ReadonlyArray<Entry>
  readonly added: ReadonlyArray<Entry>
}

/** The reorg from `before`'s head to `after`'s head (trees are values: pass the tree before and after an insert). */
export const reorg = (before: Tree, after: Tree): Reorg => {
  const lookup = (id: Id.Id) => Option.orElse(HashMap.get(after.entries, id), () => HashMap.get(before.entries, id))
  let old = lookup(before.head)
  let now = lookup(after.head)
  const removed: Array<Entry> = []
  const added: Array<Entry> = []
  while (Option.isSome(old) && Option.isSome(now) && old.value.id !== now.value.id) {
    if (old.value.height >= now.value.height) {
      removed.push(old.value)
      old = lookup(old.value.parent)
    } else {
      added.push(now.value)
      now = lookup(now.value.parent)
    }
  }
  return { removed, added: added.reverse() }
}

/** What an import did to the node's view. */
export interface Imported {
  readonly entry: Entry
  readonly head: Entry
  readonly finalized: Entry
  readonly reorg: Reorg
}

/** The consensus a node runs: import blocks, produce its own, and answer head and finality. */
export interface Service {
  readonly genesis: Block.Genesis
  /** Decodes untrusted block bytes at the edge (against the Clock) and imports them. */
  readonly receive: (bytes: Uint8Array) => Effect.Effect<Imported, LedgerError>
  /** Imports a checked block. */
  readonly importBlock: (block: Block.Verified) => Effect.Effect<Imported, LedgerError>
  /** Produces this authority's block for the current slot, if it is its turn. */
  readonly produce: (
    producer: Account.Account,
    select: (state: State.State) => ReadonlyArray<Transaction.Transaction>
  ) => Effect.Effect<Option.Option<Imported>, LedgerError>
  readonly head: Effect.Effect<Entry>
  readonly finalized: Effect.Effect<Entry>
  /** A held block (the finalized one or above). */
  readonly block: (id: Id.Id) => Effect.Effect<Option.Option<Entry>>
}

/** The consensus service: replace the layer to replace the consensus. */
export class Consensus extends Context.Tag("@weft/ledger/Consensus")<Consensus, Service>() {}

const imported = (before: Tree, after: Tree, entry: Entry): Imported => ({
  entry,
  head: forkChoice(after),
  finalized: finalized(after),
  reorg: reorg(before, after)
})

/** What `make` and `layer` take: the genesis, and optionally the node's stored chain to resume from. */
export interface Options {
  readonly genesis: Block.Genesis
  /** The stored chain above the genesis, parent first (see `replay`; `Block.decodeStored` reads stored bytes). */
  readonly blocks?: Iterable<Block.Verified>
}

/** A proof-of-authority consensus over `genesis`, holding its block tree in memory (resumed from `blocks` if given). */
export const make = (options: Options): Effect.Effect<Service, LedgerError, LedgerLimits.LedgerLimits> =>
  Effect.gen(function*() {
    const limits = yield* LedgerLimits.LedgerLimits
    const genesis = yield* Block.makeGenesis(options.genesis)
    const ref = yield* Ref.make(yield* replay(genesis, options.blocks ?? [], limits))
    // Ref.modify: the pure step runs atomically on the current tree, so concurrent imports never lose one.
    const step = <A>(run: (tree: Tree) => Either.Either<readonly [A, Tree], LedgerError>) =>
      Effect.flatten(Ref.modify(ref, (before): readonly [Either.Either<A, LedgerError>, Tree] =>
        Either.match(run(before), {
          onLeft: (error) => [Either.left(error), before],
          onRight: ([result, after]) => [Either.right(result), after]
        })))
    const importBlock = (block: Block.Verified) =>
      step((before) => Either.map(insert(before, block), ({ entry, tree }) => [imported(before, tree, entry), tree] as const))
    const receive = (bytes: Uint8Array) =>
      Effect.flatMap(Clock.currentTimeMillis, (nowMs) => Effect.flatMap(Block.decode(bytes, genesis, nowMs, limits), importBlock))
    const produceNow = (producer: Account.Account, select: (state: State.State) => ReadonlyArray<Transaction.Transaction>) =>
      Effect.flatMap(Clock.currentTimeMillis, (nowMs) =>
        step((before) =>
          Either.map(produce(before, producer, nowMs, select), Option.match({
            onNone: () => [Option.none<Imported>(), before] as const,
            onSome: ({ entry, tree }) => [Option.some(imported(before, tree, entry)), tree] as const
          }))))
    return Consensus.of({
      genesis,
      receive,
      importBlock,
      produce: produceNow,
      head: Effect.map(Ref.get(ref), forkChoice),
      finalized: Effect.map(Ref.get(ref), finalized),
      block: (id) => Effect.map(Ref.get(ref), (tree) => get(tree, id))
    })
  })

/** The proof-of-authority consensus as a layer (limits from `LedgerLimits`). */
export const layer = (options: Options): Layer.Layer<Consensus, LedgerError, LedgerLimits.LedgerLimits> =>
  Layer.effect(Consensus, make(options))
