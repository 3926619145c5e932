/**
 * Multi-node consensus under loss and a partition: 5 authorities and 20 followers, 5–10% message loss,
 * the network cut in two (2 authorities and 8 followers against 3 and 12) for 15 slots (three epochs),
 * then healed.
 * Finalized blocks must never conflict (checked at every import, see `network.ts`), and after healing
 * every node must hold the same head, the same finalized block and byte-identical state.
 *
 * Deterministic: all time is TestClock, all randomness one seeded generator. A failing run names its
 * seed; replay one with `WEFT_SIM_SEED=<seed> npx vitest run --project ledger test/sim/consensus.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Consensus from "../../src/Consensus.js"
import * as LedgerStore from "../../src/LedgerStore.js"
import * as State from "../../src/State.js"
import type * as Transaction from "../../src/Transaction.js"
import { authorities, genesis, ok, range, transfer, users } from "./chain.js"
import { Simulation } from "./network.js"

const coinsEach = 4
const chain = genesis({ users: 4, coinsEach })
const people = users(4)
/** Transaction i: user i mod 4 spends its coin ⌊i/4⌋ at that nonce + 1, so each account's nonces arrive in order. */
const txs: ReadonlyArray<Transaction.Transaction> = range(0, 15).map((index) => {
  const from = index % people.length
  const coin = Math.floor(index / people.length)
  return transfer(chain, people[from]!, people[(from + 1) % people.length]!, from * coinsEach + coin, coin + 1)
})

const partition = { fromSlot: 15, toSlot: 30, sideA: new Set([0, 1, ...range(5, 12)]) }
const seeds = process.env.WEFT_SIM_SEED === undefined ? [1, 2, 3] : [Number(process.env.WEFT_SIM_SEED)]

const simulate = (seed: number) =>
  Effect.gen(function*() {
    const sim = new Simulation({
      seed,
      genesis: chain,
      authorities: authorities(5),
      followers: 20,
      degree: 4,
      lossRate: 0.05 + (seed % 6) / 100,
      latencyMs: [20, 250],
      lastSlot: 45,
      drainSlot: 51,
      partition,
      txs,
      txEverySlots: 2
    }, Consensus.finalized(ok(Consensus.init(chain))))
    yield* sim.run
    return sim
  })

describe("multi-node consensus simulation", () => {
  for (const seed of seeds) {
    it.effect(`seed ${seed}: 5 authorities + 20 nodes, loss and a partition; finality never conflicts; all converge after healing`, () =>
      Effect.gen(function*() {
        const sim = yield* simulate(seed)
        const say = (what: string) => `seed ${seed}: ${what} (replay: WEFT_SIM_SEED=${seed})`
        const { stats } = sim
        assert.deepStrictEqual(Object.fromEntries(stats.unexpected), {}, say("honest blocks were rejected"))
        assert.isAbove(stats.lost, 0, say("no message was lost"))
        assert.isAbove(stats.cut, 0, say("the partition cut nothing"))
        assert.isAbove(stats.wants, 0, say("no catch-up was needed"))

        const heads = yield* Effect.forEach(sim.nodes, (node) => node.consensus.head)
        const finals = yield* Effect.forEach(sim.nodes, (node) => node.consensus.finalized)
        assert.deepStrictEqual(new Set(heads.map((head) => head.id)).size, 1, say("heads differ"))
        assert.deepStrictEqual(new Set(finals.map((entry) => entry.id)).size, 1, say("finalized blocks differ"))
        const states = heads.map((head) => Buffer.from(LedgerStore.encodeState(head.state)).toString("hex"))
        assert.strictEqual(new Set(states).size, 1, say("states differ"))

        // Finality before the cut; none while cut (neither side holds more than two thirds of the authorities); again after healing.
        assert.isAbove(sim.finalizedHeights.atPartition, 0, say("nothing was finalized before the partition"))
        assert.strictEqual(sim.finalizedHeights.atHeal, sim.finalizedHeights.atPartition, say("finality advanced during the partition"))
        assert.isAtLeast(finals[0]!.slot, partition.toSlot, say("finality did not resume after healing"))
        assert.isTrue(sim.isAncestor({ id: finals[0]!.id, height: finals[0]!.height }, heads[0]!.id), say("the head is not above the finalized block"))
        const reader = State.reader(heads[0]!.state)
        assert.deepStrictEqual(people.map((user) => reader.nonce(user.id)), [4, 4, 4, 4], say("a transaction was lost"))
      }))
  }
})
