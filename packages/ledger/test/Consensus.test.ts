import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer, Option, TestClock } from "effect"
import * as Account from "../src/Account.js"
import * as Block from "../src/Block.js"
import * as Consensus from "../src/Consensus.js"
import * as Id from "../src/Id.js"
import * as LedgerStore from "../src/LedgerStore.js"
import * as LedgerLimits from "../src/LedgerLimits.js"
import * as State from "../src/State.js"
import { authorities, blockAt, extend, extendAll, genesis, ok, producerAccount, range, reasonOf, transfer, users } from "./sim/chain.js"

const chain = genesis()
const fresh = () => ok(Consensus.init(chain))
const rootId = Consensus.finalized(fresh()).id
const [alice, bob] = users()

describe("Consensus rules", () => {
  it("slot from time, producer round-robin, epochs of n slots, quorum above two thirds", () => {
    assert.strictEqual(Consensus.slotAt(chain, 0), 0)
    assert.strictEqual(Consensus.slotAt(chain, 999), 0)
    assert.strictEqual(Consensus.slotAt(chain, 1000), 1)
    assert.strictEqual(Consensus.slotAt(chain, -1), -1)
    assert.strictEqual(Consensus.slotStartMs(chain, 7), 7000)
    const ids = authorities().map((a) => a.id)
    assert.deepStrictEqual(range(0, 6).map((slot) => Consensus.producerOf(chain, slot).id), [...ids, ids[0], ids[1]])
    assert.deepStrictEqual([0, 4, 5, 9, 10].map((slot) => Consensus.epochOf(chain, slot)), [0, 0, 1, 1, 2])
    assert.deepStrictEqual([1, 3, 4, 5, 6, 7].map(Consensus.quorum), [1, 3, 3, 4, 5, 5])
  })

  it("proposal: only the slot's producer, only after the head's slot", () => {
    const tree = fresh()
    assert.isTrue(Option.isSome(Consensus.proposal(tree, producerAccount(chain, 2).id, 2_500)))
    assert.isTrue(Option.isNone(Consensus.proposal(tree, producerAccount(chain, 3).id, 2_500)))
    const { tree: after } = extend(tree, rootId, 2)
    assert.isTrue(Option.isNone(Consensus.proposal(after, producerAccount(chain, 2).id, 2_900)))
  })
})

describe("Consensus.insert", () => {
  it("applies transactions and the producer's reward to the parent's state", () => {
    const tx = transfer(chain, alice!, bob!, 0, 1)
    const { entry } = extend(fresh(), rootId, 1, [tx])
    assert.strictEqual(State.reader(entry.state).nonce(alice!.id), 1)
    assert.strictEqual(State.reader(entry.state).unclaimed(producerAccount(chain, 1).id), chain.params.initialRewardUnits)
  })

  it("refuses a known block, an unknown parent, a slot not after the parent's, a wrong height, a block that does not apply", () => {
    const tree = fresh()
    const root = Consensus.finalized(tree)
    const first = blockAt(chain, root, 2)
    const { tree: grown, entry } = ok(Consensus.insert(tree, first))
    assert.strictEqual(reasonOf(Consensus.insert(grown, first)), "Duplicate")
    assert.strictEqual(reasonOf(Consensus.insert(tree, blockAt(chain, entry, 3))), "UnknownParent")
    assert.strictEqual(reasonOf(Consensus.insert(grown, blockAt(chain, entry, 2))), "BadSlot")
    assert.strictEqual(reasonOf(Consensus.insert(grown, blockAt(chain, { ...entry, height: 5 }, 3))), "BadSlot")
    const replayed = Consensus.insert(grown, blockAt(chain, entry, 3, [transfer(chain, alice!, bob!, 0, 1), transfer(chain, alice!, bob!, 0, 1)]))
    assert.strictEqual(reasonOf(replayed), "Replay")
    assert.strictEqual(Either.isLeft(replayed) ? replayed.left.index : -1, 1)
  })

  it("holds at most unfinalizedBlocksMax blocks", () => {
    const tree = ok(Consensus.init(chain, { ...LedgerLimits.defaults, unfinalizedBlocksMax: 3 }))
    const { tree: full, tip } = extendAll(tree, rootId, [1, 2])
    assert.strictEqual(reasonOf(Consensus.insert(full, blockAt(chain, Option.getOrThrow(Consensus.get(full, tip)), 3))), "TooLarge")
  })
})

describe("Consensus fork choice", () => {
  it("prefers the chain with more blocks, then the lower head id", () => {
    const tree = fresh()
    const long = extendAll(tree, rootId, [1, 2, 3])
    const short = extendAll(long.tree, rootId, [4, 5])
    assert.strictEqual(Consensus.forkChoice(short.tree).id, long.tip)
    const a = extend(tree, rootId, 1)
    const b = extend(a.tree, rootId, 2)
    assert.strictEqual(Consensus.forkChoice(b.tree).id, a.entry.id < b.entry.id ? a.entry.id : b.entry.id)
  })

  it("prefers a later justified checkpoint over more blocks", () => {
    // Fork A: slots 1..9, every authority in epoch 1 (justifies its checkpoint). Fork B: more blocks, two authorities only.
    const tree = fresh()
    const justified = extendAll(tree, rootId, range(1, 9))
    assert.strictEqual(Option.getOrThrow(Consensus.get(justified.tree, justified.tip)).justified.epoch, 1)
    const longer = extendAll(justified.tree, rootId, [2, 3, ...range(11, 40).filter((slot) => slot % 5 === 1 || slot % 5 === 2)])
    const headB = Option.getOrThrow(Consensus.get(longer.tree, longer.tip))
    assert.isAbove(headB.height, 9)
    assert.strictEqual(headB.justified.epoch, 0)
    assert.strictEqual(Consensus.forkChoice(longer.tree).id, justified.tip)
  })
})

describe("Consensus finality", () => {
  it("finalizes epoch e's checkpoint once epoch e+1's is justified from it, and prunes everything else", () => {
    const tree = fresh()
    const { tree: forked } = extendAll(tree, rootId, [2]) // a side branch that finality must prune
    const main = extendAll(forked, rootId, range(1, 12))
    assert.strictEqual(Consensus.finalized(main.tree).id, rootId, "epoch 2 has 3 of 5 blocks: not yet")
    const { tree: final, entry } = extend(main.tree, main.tip, 13)
    const checkpoint = Consensus.chain(final, entry.id).find((candidate) => candidate.slot === 4)!
    assert.strictEqual(Consensus.finalized(final).id, checkpoint.id)
    assert.deepStrictEqual(Consensus.finalizedCheckpoint(final), { epoch: 1, id: checkpoint.id })
    assert.strictEqual(Consensus.size(final), 10, "slots 4..13")
    assert.strictEqual(reasonOf(Consensus.insert(final, blockAt(chain, Consensus.chain(main.tree, main.tip).find((e) => e.slot === 2)!, 14))), "Stale")
  })

  it("a chain of fewer than a quorum of authorities never finalizes, however long", () => {
    for (const members of [[0, 1], [2, 3, 4]]) {
      const slots = range(1, 60).filter((slot) => members.includes(slot % 5))
      const { tree } = extendAll(fresh(), rootId, slots)
      assert.strictEqual(Consensus.finalized(tree).id, rootId)
      assert.strictEqual(Consensus.forkChoice(tree).justified.epoch, 0)
    }
  })

  it("one silent authority of five still finalizes (4 votes per epoch)", () => {
    const { tree } = extendAll(fresh(), rootId, range(1, 30).filter((slot) => slot % 5 !== 3))
    assert.isAtLeast(Consensus.finalizedCheckpoint(tree).epoch, 4)
  })

  it("the lock: an authority never votes from an older source than its last vote", () => {
    const tree = fresh()
    const producer = producerAccount(chain, 12)
    const justified = extendAll(tree, rootId, range(1, 9))
    const voted = ok(Consensus.produce(justified.tree, producer, 12_000, () => []))
    assert.isTrue(Option.isSome(voted))
    const locked = Option.getOrThrow(voted).tree
    assert.strictEqual(locked.lockEpoch, 1)
    // A heavier fork with an older source: the fork choice moves only if it ranks higher; force it by hand.
    const moved = { ...locked, head: extendAll(locked, rootId, [2]).tip, entries: extendAll(locked, rootId, [2]).tree.entries }
    assert.isTrue(Option.isNone(Consensus.proposal(moved, producer.id, 17_000)))
  })

  it("reorg lists the blocks left and joined", () => {
    const tree = fresh()
    const a = extendAll(tree, rootId, [1, 2])
    const b = extendAll(a.tree, rootId, [3, 4, 5])
    const { removed, added } = Consensus.reorg(a.tree, b.tree)
    assert.deepStrictEqual(removed.map((e) => e.slot), [2, 1])
    assert.deepStrictEqual(added.map((e) => e.slot), [3, 4, 5])
  })
})

describe("Consensus service", () => {
  const limits = LedgerLimits.layer()
  const node = Consensus.layer({ genesis: chain }).pipe(Layer.provide(limits))

  it.effect("produces in its slot under the clock, and another node imports the bytes", () =>
    Effect.gen(function*() {
      const producer = producerAccount(chain, 2)
      const other = yield* Consensus.make({ genesis: chain }).pipe(Effect.provide(limits))
      const service = yield* Consensus.Consensus
      yield* TestClock.adjust("1500 millis")
      assert.isTrue(Option.isNone(yield* service.produce(producer, () => [])), "slot 1 is not this producer's")
      yield* TestClock.adjust("1000 millis")
      const made = Option.getOrThrow(yield* service.produce(producer, () => []))
      assert.strictEqual(made.head.id, made.entry.id)
      const received = yield* other.receive(ok(Block.encode(made.entry.block)))
      assert.strictEqual(received.head.id, made.entry.id)
      const again = yield* Effect.either(other.receive(ok(Block.encode(made.entry.block))))
      assert.strictEqual(reasonOf(again), "Duplicate")
      const future = blockAt(chain, made.entry, 9)
      assert.strictEqual(reasonOf(yield* Effect.either(other.receive(ok(Block.encode(future))))), "FutureBlock")
    }).pipe(Effect.provide(node)))
})

describe("Consensus service: hostile block bytes", () => {
  const limits = LedgerLimits.layer()

  it.effect("every hostile block gets a typed error through receive and leaves the head where it was", () =>
    Effect.gen(function*() {
      const service = yield* Consensus.make({ genesis: chain }).pipe(Effect.provide(limits))
      const root = yield* service.finalized
      const first = blockAt(chain, root, 2)
      yield* TestClock.setTime(2_500)
      const head = (yield* service.receive(ok(Block.encode(first)))).head
      yield* TestClock.setTime(5_500)
      const next = blockAt(chain, head, 4)
      const encode = (block: Block.Block) => ok(Block.encode(block))
      const signature = Uint8Array.from(next.signature)
      signature[9] = signature[9]! ^ 1
      const intruder = producerAccount(chain, 5)
      const intruding = { ...next.header, producer: Id.toBytes(intruder.id) }
      const other = genesis({ chainId: "weft-other" })
      const foreign = ok(Block.make({ genesis: other, parent: { id: Block.id(Block.genesisBlock(other).header), height: 0 }, slot: 4, txs: [], producer: producerAccount(other, 4) }))
      const unknownParent = { ...head, id: Block.id(blockAt(chain, root, 3).header) }
      const cases: ReadonlyArray<readonly [string, Uint8Array]> = [
        ["BadSignature", encode({ ...next, signature })],
        ["WrongProducer", encode({ header: intruding, txs: [], signature: Account.sign(intruder, Block.signingMessage(Block.id(intruding))) })],
        ["FutureBlock", encode(blockAt(chain, head, 7))],
        ["BadSlot", encode(blockAt(chain, head, 1))], // a slot not after its parent's
        ["BadSlot", encode(blockAt(chain, { ...head, height: 4 }, 4))], // a height that does not follow its parent's
        ["UnknownParent", encode(blockAt(chain, unknownParent, 4))],
        ["BadRoot", encode({ ...next, txs: [transfer(chain, alice!, bob!, 0, 1)] })],
        ["TooLarge", new Uint8Array(LedgerLimits.defaults.blockBytesMax + 1)],
        ["WrongChain", encode(foreign)],
        ["Malformed", new Uint8Array([0x92, 0x01])],
        ["Duplicate", encode(first)]
      ]
      for (const [reason, bytes] of cases) assert.strictEqual(reasonOf(yield* Effect.either(service.receive(bytes))), reason, reason)
      assert.strictEqual((yield* service.head).id, head.id)
      assert.strictEqual((yield* service.receive(encode(next))).head.id, Block.id(next.header), "the honest block still goes in")
    }))
})

/** Builds a chain slot by slot from the genesis, keeping every block (the tree prunes what it finalizes). */
const stored = (slots: ReadonlyArray<number>) => {
  let tree = fresh()
  let tip = rootId
  const blocks: Array<Block.Verified> = []
  for (const slot of slots) {
    const inserted = ok(Consensus.insert(tree, blockAt(chain, Option.getOrThrow(Consensus.get(tree, tip)), slot)))
    blocks.push(inserted.entry.block)
    tree = inserted.tree
    tip = inserted.entry.id
  }
  return { tree, blocks }
}

describe("Consensus restart", () => {
  it("replay of a stored chain gives the same head, finality and state, and restores the lock", () => {
    const { tree, blocks } = stored(range(1, 18))
    assert.isAtLeast(Consensus.finalizedCheckpoint(tree).epoch, 2)
    const replayed = ok(Consensus.replay(chain, [Block.genesisBlock(chain), ...blocks]))
    assert.strictEqual(Consensus.forkChoice(replayed).id, Consensus.forkChoice(tree).id)
    assert.deepStrictEqual(Consensus.finalizedCheckpoint(replayed), Consensus.finalizedCheckpoint(tree))
    assert.strictEqual(Consensus.size(replayed), Consensus.size(tree))
    assert.deepStrictEqual(LedgerStore.encodeState(Consensus.forkChoice(replayed).state), LedgerStore.encodeState(Consensus.forkChoice(tree).state))
    assert.strictEqual(replayed.lockEpoch, Consensus.forkChoice(tree).justified.epoch)
    // The lock is conservative: slot 19 would vote from source 2 (below it); slot 21 opens epoch 4 from source 3.
    assert.isTrue(Option.isNone(Consensus.proposal(replayed, producerAccount(chain, 19).id, 19_000)))
    assert.isTrue(Option.isSome(Consensus.proposal(replayed, producerAccount(chain, 21).id, 21_000)))
  })

  it("replay refuses a chain with a gap, with the missing block's reason", () => {
    const { blocks } = stored(range(1, 4))
    assert.strictEqual(reasonOf(Consensus.replay(chain, [blocks[0]!, blocks[2]!])), "UnknownParent")
  })

  it("decodeStored reads stored bytes without the signature or the clock, but still checks the root", () => {
    const { blocks } = stored(range(1, 3))
    const last = blocks[2]!
    const unsigned = ok(Block.encode({ ...last, signature: new Uint8Array(0) }))
    assert.strictEqual(Block.id(ok(Block.decodeStored(unsigned, chain)).header), Block.id(last.header))
    assert.strictEqual(reasonOf(Block.decode(unsigned, chain, 0)), "FutureBlock")
    assert.strictEqual(reasonOf(Block.decodeStored(ok(Block.encode({ ...last, txs: [transfer(chain, alice!, bob!, 0, 1)] })), chain)), "BadRoot")
  })

  it.effect("make({ genesis, blocks }) resumes a node: same head and finalized block, and it keeps importing", () =>
    Effect.gen(function*() {
      const { tree, blocks } = stored(range(1, 14))
      const bytes = blocks.map((block) => ok(Block.encode(block)))
      const resumed = yield* Consensus.make({ genesis: chain, blocks: bytes.map((b) => ok(Block.decodeStored(b, chain))) }).pipe(Effect.provide(LedgerLimits.layer()))
      assert.strictEqual((yield* resumed.head).id, Consensus.forkChoice(tree).id)
      assert.strictEqual((yield* resumed.finalized).id, Consensus.finalized(tree).id)
      yield* TestClock.setTime(15_100)
      const made = Option.getOrThrow(yield* resumed.produce(producerAccount(chain, 15), () => []))
      assert.strictEqual(made.head.slot, 15)
      assert.strictEqual(made.entry.parent, Consensus.forkChoice(tree).id)
    }))
})
