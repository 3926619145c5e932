import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Weft from "./weft.js"

interface Line {
  readonly event: string
  readonly id?: string
  readonly pid?: number
  readonly control?: string
  readonly transports?: ReadonlyArray<{ readonly kind: string; readonly address: string }>
  readonly peers?: ReadonlyArray<string>
  readonly messagesPerSecond?: number
  readonly reason?: string
  readonly t?: number
}

describe("weft dev", () => {
  it.live("--nodes 3 --for 5s --json: three connected nodes, JSON lines only, a clean exit", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const result = yield* Weft.run(["dev", "--nodes", "3", "--for", "5s", "--json"], "25 seconds")
      assert.strictEqual(result.code, 0, result.stderr)
      assert.isBelow(Date.now() - started, 20_000)

      const lines = Weft.linesOf(result.stdout).map((line) => JSON.parse(line) as Line)
      const nodeLines = lines.filter((line) => line.event === "node")
      const statusLines = lines.filter((line) => line.event === "status")
      const ids = new Set(nodeLines.map((line) => line.id))
      assert.strictEqual(nodeLines.length, 3)
      assert.strictEqual(ids.size, 3)
      assert.isAtLeast(statusLines.length, 3 * 3)

      for (const line of [...nodeLines, ...statusLines]) {
        assert.match(line.id!, /^[a-z2-7]{52}$/)
        assert.isNumber(line.pid)
        assert.isString(line.control)
        assert.isTrue(line.control!.endsWith("control.sock"))
        assert.deepStrictEqual(line.transports!.map((t) => t.kind), ["mem"])
        assert.isArray(line.peers)
      }
      // By the end every node is connected to both others.
      for (const id of ids) {
        const last = statusLines.filter((line) => line.id === id).at(-1)!
        assert.deepStrictEqual([...last.peers!].sort(), [...ids].filter((other) => other !== id).sort())
      }
      // DevPing traffic makes the rate non-zero.
      assert.isAbove(statusLines.reduce((sum, line) => sum + line.messagesPerSecond!, 0), 0)

      const stopped = lines.at(-1)!
      assert.strictEqual(stopped.event, "stopped")
      assert.strictEqual(stopped.reason, "duration")
      // The default data directory was a fresh temp dir; it is gone, control sockets with it.
      for (const line of nodeLines) {
        assert.isFalse(Fs.existsSync(line.control!))
        assert.isFalse(Fs.existsSync(Path.dirname(Path.dirname(line.control!))))
      }
    }), 30_000)

  it.live("--data DIR: nodes keep their identities there and remove their sockets on exit", () =>
    Effect.gen(function*() {
      const dataDir = Fs.mkdtempSync(Path.join("/tmp", "weft-test-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dataDir, { recursive: true, force: true })))
      const first = yield* Weft.run(["dev", "--nodes", "2", "--for", "500ms", "--data", dataDir, "--json"], "25 seconds")
      const second = yield* Weft.run(["dev", "--nodes", "2", "--for", "500 millis", "--data", dataDir, "--json"], "25 seconds")
      assert.strictEqual(first.code, 0, first.stderr)
      assert.strictEqual(second.code, 0, second.stderr)
      const idsOf = (stdout: string) =>
        Weft.linesOf(stdout).map((line) => JSON.parse(line) as Line).filter((line) => line.event === "node").map((line) => line.id)
      assert.deepStrictEqual(idsOf(second.stdout), idsOf(first.stdout))
      for (const node of ["node-0", "node-1"]) {
        assert.isTrue(Fs.existsSync(Path.join(dataDir, node, "identity.json")))
        assert.isFalse(Fs.existsSync(Path.join(dataDir, node, "control.sock")))
      }
    }).pipe(Effect.scoped), 60_000)

  it.live("human output names each node and prints status lines", () =>
    Effect.gen(function*() {
      const result = yield* Weft.run(["dev", "--nodes", "2", "--for", "2s"], "25 seconds")
      assert.strictEqual(result.code, 0, result.stderr)
      assert.match(result.stdout, /node 0 {2}[a-z2-7]{52} {2}mem:\S+ {2}control \S+control\.sock/)
      assert.match(result.stdout, /\] peers 1\/1 {2}messages\/s \d/)
      assert.match(result.stdout, /stopped 2 nodes \(time is up\)/)
    }), 30_000)
})
