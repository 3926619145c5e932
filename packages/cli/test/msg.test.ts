import { assert, describe, it } from "@effect/vitest"
import { Account } from "@weft/ledger"
import { Duration, Effect, Schedule } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as NodeConfig from "../src/NodeConfig.js"
import * as Weft from "./weft.js"

interface Event {
  readonly event: string
  readonly key?: string
  readonly account?: string
}

interface Line {
  readonly event?: string
  readonly [field: string]: unknown
}

/** Runs `weft args…` in this process, failing the test on a non-zero exit; its stdout lines. */
const weft = (...args: ReadonlyArray<string>) =>
  Effect.flatMap(Weft.runHere(args), (result) =>
    result.code === 0 ? Effect.succeed(Weft.linesOf(result.stdout)) : Effect.dieMessage(`weft ${args.join(" ")} failed: ${result.stderr}`))

const jsonLines = (lines: ReadonlyArray<string>) => lines.map((line) => JSON.parse(line) as Line)

/** Polls `weft args…` (relaying between nodes takes a moment) until `done` holds for what it printed so far. */
const pollUntil = (args: ReadonlyArray<string>, done: (seen: ReadonlyArray<string>) => boolean) =>
  Effect.gen(function*() {
    const seen: Array<string> = []
    yield* weft(...args).pipe(
      Effect.tap((lines) => Effect.sync(() => seen.push(...lines))),
      Effect.repeat({ until: () => done(seen), schedule: Schedule.spaced("300 millis") }),
      Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`weft ${args.join(" ")}: still ${JSON.stringify(seen)}`) })
    )
    return seen
  })

const accountId = /^0x[0-9a-f]{64}$/

describe("weft msg", () => {
  it.scopedLive("over `weft dev --nodes 2`: broadcast + lookup, channels both ways, --follow, --json, a recipient without keys", () =>
    Effect.gen(function*() {
      const data = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join("/tmp", "weft-msg-"))),
        (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
      const dev = yield* Weft.start(["dev", "--nodes", "2", "--for", "180s", "--json", "--data", data])
      const lines = yield* Weft.takeUntil(dev, (line) => JSON.parse(line) as Event, (line) => line.event === "ledger", "60 seconds")
      const alice = { key: lines[lines.length - 1]!.key!, id: lines[lines.length - 1]!.account! }
      const [node0, node1] = [Path.join(data, "node-0"), Path.join(data, "node-1")]
      const keyOf = (name: string, seed: number) =>
        Effect.gen(function*() {
          const account = Account.generate(new Uint8Array(32).fill(seed))
          const key = Path.join(data, `${name}.json`)
          yield* Account.save(key, account)
          return { key, id: `0x${account.id}` }
        })
      const bob = yield* keyOf("bob", 11)
      const carol = yield* keyOf("carol", 12)

      // A public broadcast sent on one node is found by prefix on the other.
      const sent = jsonLines(yield* weft("msg", "broadcast", "0xc0ffee", "hello everyone", "--ttl", "5m", "--json", "--node", node0))
      assert.strictEqual(sent.length, 1)
      assert.strictEqual(sent[0]!.event, "broadcast")
      assert.match(sent[0]!["id"] as string, /^c0ffee0{122}$/)
      assert.strictEqual(sent[0]!["ttlSeconds"], 300)
      assert.strictEqual(sent[0]!["stored"], "Stored")
      assert.isAtLeast(sent[0]!["workBits"] as number, 8)
      const found = yield* pollUntil(["msg", "lookup", "c0ffee", "--json", "--node", node1], (seen) => seen.length > 0)
      assert.deepInclude(JSON.parse(found[0]!) as Line, { id: sent[0]!["id"], text: "hello everyone", bytes: 14 })
      assert.deepStrictEqual(yield* weft("msg", "lookup", "c0ffee", "--node", node1), [`${sent[0]!["id"] as string} hello everyone`])

      // Without a lattice key on the chain, the recipient cannot be written to: a clear error.
      const refused = yield* Weft.runHere(["msg", "send", carol.id, "hi", "--node", node0, "--key", alice.key])
      assert.strictEqual(refused.code, 1)
      assert.match(refused.stderr, /^weft: account 0x[0-9a-f]{64} has no lattice key registered on the chain: its owner must run `weft token keys register` first/)

      // Registering needs no balance: bob has none.
      yield* weft("token", "keys", "register", "--node", node0, "--key", bob.key)
      yield* weft("token", "keys", "register", "--node", node0, "--key", alice.key)

      const first = jsonLines(yield* weft("msg", "send", bob.id, "hello bob", "--json", "--node", node0, "--key", alice.key))
      assert.strictEqual(first.length, 1)
      assert.deepInclude(first[0]!, { event: "sent", to: bob.id, opened: true, ttlSeconds: 600, stored: "Stored" })
      assert.match(first[0]!["id"] as string, /^[0-9a-f]{128}$/)
      assert.isTrue(Fs.existsSync(Path.join(data, "dev-account.channels.json")))

      // Bob, on the other node: the opening and the text, once each.
      const bobInbox = ["msg", "inbox", "--json", "--node", node1, "--key", bob.key]
      const received = jsonLines(yield* pollUntil(bobInbox, (seen) => seen.some((line) => line.includes("hello bob"))))
      assert.deepStrictEqual(received.map((line) => [line.event, line["from"], line["text"]]), [["opened", alice.id, undefined], ["message", alice.id, "hello bob"]])
      assert.deepStrictEqual(yield* weft(...bobInbox), [])

      // The reply continues the same channel; alice reads it in the human format.
      const reply = jsonLines(yield* weft("msg", "send", alice.id, "hi alice", "--json", "--node", node1, "--key", bob.key))
      assert.strictEqual(reply[0]!["opened"], false)
      const aliceInbox = yield* pollUntil(["msg", "inbox", "--node", node0, "--key", alice.key], (seen) => seen.length > 0)
      assert.deepStrictEqual(aliceInbox, [`${bob.id} hi alice`])
      assert.match(bob.id, accountId)

      // --follow (the real binary): a message sent afterwards is printed as it arrives.
      const follow = yield* Weft.start(["msg", "inbox", "--follow", "--json", "--node", node1, "--key", bob.key])
      yield* Effect.sleep("3 seconds")
      yield* weft("msg", "send", bob.id, "still there?", "--node", node0, "--key", alice.key)
      const followed = yield* Weft.takeUntil(follow, (line) => JSON.parse(line) as Line, (line) => line.event === "message", "30 seconds")
      assert.deepInclude(followed[followed.length - 1]!, { event: "message", from: alice.id, text: "still there?" })
    }), { timeout: 150_000 })
})

describe("node config: the ephemeral section", () => {
  const resolve = (json: unknown) =>
    Effect.flatMap(NodeConfig.decode("node.json", json), (config) => NodeConfig.resolve(config, { listen: [], connect: [], dataDir: "/data" }))
  const ledger = { genesis: "genesis.json" }

  it.effect("is on by default on a ledger node, off with false, and checked", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual((yield* resolve({ ledger })).ephemeral, {})
      assert.isUndefined((yield* resolve({})).ephemeral)
      assert.isUndefined((yield* resolve({ ledger, ephemeral: false })).ephemeral)
      const custom = (yield* resolve({ ledger, ephemeral: { relay: false, ttlMax: "1h", blockDepth: 16 } })).ephemeral!
      assert.deepStrictEqual([custom.relay, custom.blockDepth, Duration.toSeconds(custom.ttlMax!)], [false, 16, 3600])
      const unknown = yield* Effect.flip(resolve({ ledger, ephemeral: { relays: true } }))
      assert.match(unknown.message, /^node\.json: ephemeral/)
      const depth = yield* Effect.flip(resolve({ ledger, ephemeral: { blockDepth: 0 } }))
      assert.match(depth.message, /^node\.json: ephemeral/)
      const alone = yield* Effect.flip(resolve({ ephemeral: {} }))
      assert.match(alone.message, /needs a ledger section/)
    }))
})
