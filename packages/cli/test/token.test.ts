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
  it.scopedLive("over `weft dev --nodes 2`: balance, transfer, accept, split, merge, --json, and a refusal", () =>
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
    }), { timeout: 180_000 })
})
