/**
 * The block tree of the proof-of-authority consensus, as an immutable value (persistent maps, so a
 * rejected block leaves the old tree as it was and a caller can diff two trees for a reorg).
 *
 * Each entry carries what the finality rule needs, derived once from its parent in O(1): the
 * checkpoint its epoch votes for (`target`), how many blocks of its epoch its chain holds (`votes`,
 * distinct authorities because slots strictly increase and an epoch gives each authority one slot),
 * the justified checkpoint its vote links from (`source`), and its chain's latest justified and
 * finalized checkpoints. See the package README for the rule and its safety argument.
 */
import { Either, HashMap, HashSet, Option } from "effect"
import type * as Block from "../Block.js"
import * as Diff from "../Diff.js"
import * as Id from "../Id.js"
import { make as fail } from "../LedgerError.js"
import type { LedgerError } from "../LedgerError.js"
import type * as LedgerLimits from "../LedgerLimits.js"
import * as State from "../State.js"
import * as Rules from "./consensusRules.js"

/** A checkpoint: a block as the boundary of an epoch. */
export interface Checkpoint {
  readonly epoch: number
  readonly id: Id.Id
}

/** A block in the tree, with its post-state and its finality bookkeeping. */
export interface Entry {
  readonly id: Id.Id
  readonly block: Block.Verified
  readonly parent: Id.Id
  readonly height: number
  readonly slot: number
  readonly epoch: number
  /** The ledger state after this block (its transactions, then its reward). */
  readonly state: State.State
  /** The checkpoint this block votes for: the last block of its chain before its epoch began. */
  readonly target: Id.Id
  /** Blocks of this epoch in this chain, up to and including this one. */
  readonly votes: number
  /** The justified checkpoint this block's vote links from: its chain's latest justified one as the epoch began. */
  readonly source: Checkpoint
  /** The latest justified checkpoint of this chain. */
  readonly justified: Checkpoint
  /** The latest finalized checkpoint of this chain. */
  readonly finalized: Checkpoint
}

/** The tree: every block above (and including) the node's finalized block. */
export interface Tree {
  readonly genesis: Block.Genesis
  readonly limits: LedgerLimits.Values
  readonly entries: HashMap.HashMap<Id.Id, Entry>
  readonly children: HashMap.HashMap<Id.Id, ReadonlyArray<Id.Id>>
  readonly leaves: HashSet.HashSet<Id.Id>
  /** The node's finalized checkpoint: the tree's root; never reverted. */
  readonly root: Checkpoint
  readonly head: Id.Id
  /** The source epoch of the last block this node produced: it never votes from an older source (the lock). */
  readonly lockEpoch: number
}

/** An entry known to be present. */
export const entry = (tree: Tree, id: Id.Id): Entry => Option.getOrThrow(HashMap.get(tree.entries, id))

/** The fork-choice order: higher justified epoch, then more blocks, then the lower id. */
export const better = (a: Entry, b: Entry): boolean =>
  a.justified.epoch !== b.justified.epoch ? a.justified.epoch > b.justified.epoch : a.height !== b.height ? a.height > b.height : a.id < b.id

/** The finality bookkeeping of a child of `parent` at `slot`. */
export const derive = (genesis: Block.Genesis, parent: Entry, slot: number): Pick<Entry, "epoch" | "target" | "votes" | "source" | "justified" | "finalized"> => {
  const epoch = Rules.epochOf(genesis, slot)
  const first = parent.epoch < epoch
  const target = first ? parent.id : parent.target
  const votes = first ? 1 : parent.votes + 1
  const source = first ? parent.justified : parent.source
  const justifies = votes >= Rules.quorum(genesis.authorities.length) && epoch > source.epoch
  const justified = justifies ? { epoch, id: target } : parent.justified
  // FFG: a justified checkpoint is final once the next epoch's checkpoint is justified from it.
  const finalizes = justifies && source.epoch === epoch - 1 && source.epoch > parent.finalized.epoch
  return { epoch, target, votes, source, justified, finalized: finalizes ? source : parent.finalized }
}

const rootEntry = (genesis: Block.Genesis, block: Block.Verified, id: Id.Id, state: State.State): Entry => {
  const checkpoint = { epoch: 0, id }
  return { id, block, parent: Id.fromBytes(block.header.parent), height: 0, slot: 0, epoch: 0, state, target: id, votes: 0, source: checkpoint, justified: checkpoint, finalized: checkpoint }
}

/** A tree holding only the genesis block. */
export const init = (genesis: Block.Genesis, block: Block.Verified, id: Id.Id, limits: LedgerLimits.Values): Either.Either<Tree, LedgerError> =>
  Either.map(State.genesis(genesis.params, genesis.allocations), ({ state }) => ({
    genesis,
    limits,
    entries: HashMap.make([id, rootEntry(genesis, block, id, state)]),
    children: HashMap.empty(),
    leaves: HashSet.make(id),
    root: { epoch: 0, id },
    head: id,
    lockEpoch: 0
  }))

const parentOf = (tree: Tree, header: Block.Header): Either.Either<Entry, LedgerError> => {
  const parentId = Id.fromBytes(header.parent)
  const parent = HashMap.get(tree.entries, parentId)
  if (Option.isSome(parent)) return Either.right(parent.value)
  const root = entry(tree, tree.root.id)
  return header.height <= root.height
    ? Either.left(fail("Stale", `block at height ${header.height} conflicts with the finalized block at height ${root.height}`))
    : Either.left(fail("UnknownParent", `parent 0x${parentId} is unknown`))
}

const checkOrder = (parent: Entry, header: Block.Header): Either.Either<void, LedgerError> => {
  if (header.height !== parent.height + 1) return Either.left(fail("BadSlot", `height ${header.height} after a parent at height ${parent.height}`))
  if (header.slot <= parent.slot) return Either.left(fail("BadSlot", `slot ${header.slot} is not after the parent's slot ${parent.slot}`))
  return Either.void
}

/** The state after a block: its transactions all or nothing, then the producer's reward. */
export const stateAfter = (tree: Tree, parent: Entry, block: Block.Verified): Either.Either<State.State, LedgerError> =>
  Either.gen(function*() {
    const { params } = tree.genesis
    const applied = yield* State.applyBlock(parent.state, block.txs, params, tree.limits)
    const reward = yield* State.reward(applied.state, Id.fromBytes(block.header.producer), block.header.height, params)
    return State.applyDiff(applied.state, Diff.combine(Diff.empty, reward))
  })

/** Adds a checked block whose parent is in the tree; the head moves if the block ranks above it, the root if it finalizes a later checkpoint. */
export const insert = (tree: Tree, block: Block.Verified, id: Id.Id): Either.Either<{ readonly tree: Tree; readonly entry: Entry }, LedgerError> =>
  Either.gen(function*() {
    if (HashMap.has(tree.entries, id)) return yield* Either.left(fail("Duplicate", `block 0x${id} is known`))
    const { header } = block
    const parent = yield* parentOf(tree, header)
    yield* checkOrder(parent, header)
    if (HashMap.size(tree.entries) >= tree.limits.unfinalizedBlocksMax) {
      return yield* Either.left(fail("TooLarge", `${HashMap.size(tree.entries)} blocks above the finalized one, at most ${tree.limits.unfinalizedBlocksMax}`))
    }
    const state = yield* stateAfter(tree, parent, block)
    const added: Entry = { id, block, parent: parent.id, height: header.height, slot: header.slot, state, ...derive(tree.genesis, parent, header.slot) }
    const grown: Tree = {
      ...tree,
      entries: HashMap.set(tree.entries, id, added),
      children: HashMap.set(tree.children, parent.id, [...Option.getOrElse(HashMap.get(tree.children, parent.id), () => []), id]),
      leaves: HashSet.add(HashSet.remove(tree.leaves, parent.id), id),
      head: better(added, entry(tree, tree.head)) ? id : tree.head
    }
    return { tree: added.finalized.epoch > tree.root.epoch ? finalize(grown, added.finalized) : grown, entry: added }
  })

/** Moves the root to a later finalized checkpoint (a descendant of the current root) and prunes every block not above it. */
const finalize = (tree: Tree, checkpoint: Checkpoint): Tree => {
  if (checkpoint.id === tree.root.id) return { ...tree, root: checkpoint }
  const entries = HashMap.beginMutation(HashMap.empty<Id.Id, Entry>())
  const children = HashMap.beginMutation(HashMap.empty<Id.Id, ReadonlyArray<Id.Id>>())
  const leaves = HashSet.beginMutation(HashSet.empty<Id.Id>())
  const pending = [checkpoint.id]
  let head = entry(tree, checkpoint.id)
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const kept = entry(tree, next)
    HashMap.set(entries, next, kept)
    const below = Option.getOrElse(HashMap.get(tree.children, next), () => [])
    if (below.length > 0) HashMap.set(children, next, below)
    else {
      HashSet.add(leaves, next)
      if (better(kept, head)) head = kept
    }
    pending.push(...below)
  }
  return {
    ...tree,
    entries: HashMap.endMutation(entries),
    children: HashMap.endMutation(children),
    leaves: HashSet.endMutation(leaves),
    root: checkpoint,
    head: head.id
  }
}
