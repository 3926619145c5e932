import { assert, describe, it } from "@effect/vitest"
import { Account } from "@weft/ledger"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Weft from "./weft.js"

interface Event {
  readonly event: string
  readonly key?: string
  readonly account?: string
}

const coinLine = /^(\d+\.\d+) WEFT \(Coin (0x[0-9a-f]{64})\)$/
const pendingLine = /^(\d+\.\d+) WEFT \(Pending Transaction (0x[0-9a-f]{64})\)$/

/** Runs `weft token …` in this process against `node`, failing the test on a non-zero exit. */
const token = (node: string, key: string, ...args: ReadonlyArray<string>) =>
  Effect.flatMap(Weft.runHere(["token", ...args, "--node", node, "--key", key]), (result) =>
    result.code === 0 ? Effect.succeed(Weft.linesOf(result.stdout)) : Effect.dieMessage(`weft token ${args.join(" ")} failed: ${result.stderr}`))

describe("weft token", () => {
  it.scopedLive("over `weft dev --nodes 2`: balance, transfer, accept, split, merge, keys register, mint all, mutual-receive/-transfer, reject, --json, and refusals", () =>
    Effect.gen(function*() {
      const data = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join("/tmp", "weft-token-"))),
        (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
      // The dev network's processes are killed when this scope closes, whatever the test's outcome.
      const dev = yield* Weft.start(["dev", "--nodes", "2", "--for", "180s", "--json", "--data", data])
      const lines = yield* Weft.takeUntil(dev, (line) => JSON.parse(line) as Event, (line) => line.event === "ledger", "60 seconds")
      const ledger = lines[lines.length - 1]!
      const devKey = ledger.key!
      const node = Path.join(data, "node-1")
      const friendKey = Path.join(data, "friend.json")
      const friend = Account.generate(new Uint8Array(32).fill(7))
      yield* Account.save(friendKey, friend)

      // The real binary, once: the dev account's genesis balance.
      const first = yield* Weft.run(["token", "balance", "--node", node, "--key", devKey], "30 seconds")
      assert.strictEqual(first.code, 0, first.stderr)
      assert.deepStrictEqual(Weft.linesOf(first.stdout), [`1000.0 WEFT (Account ${ledger.account})`])

      const sent = yield* token(node, devKey, "transfer", `0x${friend.id}`, "12.5")
      const pending = pendingLine.exec(sent[0]!)
      assert.isNotNull(pending, sent[0])
      assert.strictEqual(pending![1], "12.5")
      const friendView = yield* token(node, friendKey, "balance")
      assert.deepStrictEqual(friendView, [`0.0 WEFT (Account 0x${friend.id})`, `12.5 WEFT (Pending Transaction ${pending![2]})`])

      const accepted = yield* token(node, friendKey, "accept", pending![2]!)
      assert.match(accepted[0]!, coinLine)
      const coin = coinLine.exec(accepted[0]!)![2]!
      assert.deepStrictEqual(yield* token(node, friendKey, "balance"), [`12.5 WEFT (Account 0x${friend.id})`])

      const parts = yield* token(node, friendKey, "split", coin, "11.5", "0x1DCD65000")
      assert.strictEqual(parts.length, 2)
      assert.strictEqual(coinLine.exec(parts[0]!)![1], "11.5")
      assert.strictEqual(coinLine.exec(parts[1]!)![1], "1.0")
      const merged = yield* token(node, friendKey, "merge", coinLine.exec(parts[0]!)![2]!, coinLine.exec(parts[1]!)![2]!)
      assert.strictEqual(coinLine.exec(merged[0]!)![1], "12.5")
      const mergedCoin = coinLine.exec(merged[0]!)![2]!

      const json = (yield* token(node, friendKey, "coins", "--json")).map((line) => JSON.parse(line) as { coin: string; amount: string })
      assert.deepStrictEqual(json, [{ coin: mergedCoin, amount: String(100_000_000_000n) }])
      const devJson = JSON.parse((yield* token(node, devKey, "balance", "--json"))[0]!) as { spendable: string }
      assert.strictEqual(devJson.spendable, String(9875n * 800_000_000n))

      // A refusal is one line on stderr and a non-zero exit.
      const refused = yield* Weft.runHere(["token", "accept", pending![2]!, "--node", node, "--key", friendKey])
      assert.strictEqual(refused.code, 1)
      assert.match(refused.stderr, /^weft: no pending transaction 0x[0-9a-f]{64}/)
      const overdraft = yield* Weft.runHere(["token", "transfer", ledger.account!, "5000", "--node", node, "--key", friendKey])
      assert.strictEqual(overdraft.code, 1)
      assert.match(overdraft.stderr, /InsufficientFunds/)

      // mutual-receive runs as its own process (it prints the rendezvous, then waits); meanwhile other accounts act.
      const receiver = yield* Weft.start(["token", "mutual-receive", "3.5", "--node", node, "--key", friendKey, "--json"])

      // keys register, by an account that holds nothing (registering costs no coin).
      const carol = Account.generate(new Uint8Array(32).fill(9))
      const carolKey = Path.join(data, "carol.json")
      yield* Account.save(carolKey, carol)
      const registered = JSON.parse((yield* token(node, carolKey, "keys", "register", "--json"))[0]!) as Record<string, unknown>
      assert.deepStrictEqual(Object.keys(registered).sort(), ["account", "height", "kem"])
      assert.strictEqual(registered["account"], `0x${carol.id}`)
      assert.match(String(registered["kem"]), /^0x[0-9a-f]{64}$/)
      assert.isAbove(Number(registered["height"]), 0)

      // mint all: the dev network's authorities claim their rewards on their own (autoClaim is on by
      // default), so an authority holds them in one coin without a command; an account with no rewards
      // gets a clean refusal.
      const authorityKey = Path.join(node, "authority.json")
      const authority = yield* Account.load(authorityKey)
      let claimed: ReadonlyArray<{ coin: string; amount: string }> = []
      for (let tries = 0; tries < 40 && claimed.length === 0; tries++) {
        claimed = (yield* token(node, authorityKey, "coins", "--json")).map((line) => JSON.parse(line) as { coin: string; amount: string })
        if (claimed.length === 0) yield* Effect.sleep("500 millis")
      }
      assert.strictEqual(claimed.length, 1, "the authority's rewards landed in one coin without any command")
      assert.isAbove(Number(claimed[0]!.amount), 0)
      const authorityView = JSON.parse((yield* token(node, authorityKey, "balance", "--json"))[0]!) as { account: string; spendable: string }
      assert.strictEqual(authorityView.account, `0x${authority.id}`)
      assert.isTrue(BigInt(authorityView.spendable) >= BigInt(claimed[0]!.amount), "balance reads the head state, which holds the claimed coin")
      const nothing = yield* Weft.runHere(["token", "mint", "all", "--json", "--node", node, "--key", devKey])
      assert.strictEqual(nothing.code, 1)
      assert.strictEqual(nothing.stdout, "")
      assert.match(nothing.stderr, /^weft: NothingToClaim: 0x[0-9a-f]{64} has no unclaimed rewards\n$/)

      // mutual-transfer pays the rendezvous; the receiver's coin lands in one step.
      type Mutual = { readonly event: string; readonly rendezvous?: string; readonly amount?: string; readonly coin?: string; readonly height?: number }
      const offered = yield* Weft.takeUntil(receiver, (line) => JSON.parse(line) as Mutual, (line) => line.event === "rendezvous", "40 seconds")
      const rendezvous = offered[offered.length - 1]!
      assert.match(rendezvous.rendezvous!, /^0x[0-9a-f]{64}$/)
      assert.strictEqual(rendezvous.amount, String(35n * 800_000_000n))
      const paid = (yield* token(node, devKey, "mutual-transfer", rendezvous.rendezvous!, "3.5", "--json")).map((line) => JSON.parse(line) as Record<string, unknown>)
      assert.deepStrictEqual(paid, [{ event: "sent", amount: String(35n * 800_000_000n), rendezvous: rendezvous.rendezvous, to: `0x${friend.id}` }])
      const received = yield* Weft.takeUntil(receiver, (line) => JSON.parse(line) as Mutual, (line) => line.event === "received", "40 seconds")
      const landed = received[received.length - 1]!
      assert.deepStrictEqual(Object.keys(landed).sort(), ["amount", "coin", "event", "height"])
      assert.strictEqual(landed.amount, String(35n * 800_000_000n))
      assert.strictEqual((yield* receiver.exit).code, 0)
      const friendCoins = (yield* token(node, friendKey, "coins", "--json")).map((line) => JSON.parse(line) as { coin: string; amount: string })
      assert.deepStrictEqual(friendCoins.find((c) => c.coin === landed.coin), { coin: landed.coin!, amount: String(35n * 800_000_000n) })

      // reject: the pending transaction goes back to its refund account (the sender) as a new pending one.
      const offer = JSON.parse((yield* token(node, devKey, "transfer", `0x${friend.id}`, "2", "--json"))[0]!) as { pending: string; amount: string }
      const rejected = (yield* token(node, friendKey, "reject", offer.pending, "--json")).map((line) => JSON.parse(line) as Record<string, unknown>)
      assert.strictEqual(rejected.length, 1)
      assert.deepStrictEqual(Object.keys(rejected[0]!).sort(), ["amount", "height", "pending", "to"])
      assert.strictEqual(rejected[0]!["amount"], String(2n * 8_000_000_000n))
      assert.strictEqual(rejected[0]!["to"], ledger.account)
      assert.notStrictEqual(rejected[0]!["pending"], offer.pending)
      const devAfter = JSON.parse((yield* token(node, devKey, "balance", "--json"))[0]!) as { pending: ReadonlyArray<{ id: string; amount: string }> }
      assert.deepStrictEqual(devAfter.pending, [{ id: String(rejected[0]!["pending"]), amount: String(2n * 8_000_000_000n) }], "the refund waits for the sender")
    }), { timeout: 180_000 })
})
