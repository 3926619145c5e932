import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Identity } from "../src/internal/core.js"
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

// A port that was free a moment ago, for a node config that names one.
const freeUdpPort = Effect.async<number>((resume) => {
  const socket = Dgram.createSocket("udp4")
  socket.bind(0, "127.0.0.1", () => {
    const { port } = socket.address()
    socket.close(() => resume(Effect.succeed(port)))
  })
})

const parse = (stdout: string) => Weft.linesOf(stdout).map((line) => JSON.parse(line) as Line)

describe("weft dev", () => {
  it.live("--nodes 3 --for 5s --json: three node processes over UDP, connected, JSON lines only, a clean exit", () =>
    Effect.gen(function*() {
      const result = yield* Weft.run(["dev", "--nodes", "3", "--for", "5s", "--json"], "60 seconds")
      assert.strictEqual(result.code, 0, result.stderr)

      const lines = parse(result.stdout)
      const nodeLines = lines.filter((line) => line.event === "node")
      const statusLines = lines.filter((line) => line.event === "status")
      const ids = new Set(nodeLines.map((line) => line.id))
      const pids = new Set(nodeLines.map((line) => line.pid))
      assert.strictEqual(nodeLines.length, 3)
      assert.strictEqual(ids.size, 3)
      // One process per node, none of them weft dev itself.
      assert.strictEqual(pids.size, 3)
      assert.isFalse(pids.has(result.pid))
      assert.isAtLeast(statusLines.length, 3 * 3)
      assert.isEmpty(lines.filter((line) => line.event === "exited"))

      for (const line of [...nodeLines, ...statusLines]) {
        assert.match(line.id!, /^[a-z2-7]{52}$/)
        assert.isTrue(pids.has(line.pid))
        assert.isTrue(line.control!.endsWith("control.sock"))
        assert.strictEqual(line.transports!.length, 1)
        assert.strictEqual(line.transports![0]!.kind, "udp")
        assert.match(line.transports![0]!.address, /^udp:127\.0\.0\.1:[1-9]\d*$/)
        assert.isArray(line.peers)
      }
      assert.strictEqual(new Set(nodeLines.map((line) => line.transports![0]!.address)).size, 3)
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
      // Every node process is gone, and so is the temp data directory with the control sockets.
      for (const pid of pids) assert.isFalse(Weft.isAlive(pid!), `node process ${pid} outlived weft dev`)
      for (const line of nodeLines) {
        assert.isFalse(Fs.existsSync(line.control!))
        assert.isFalse(Fs.existsSync(Path.dirname(Path.dirname(line.control!))))
      }
    }), 90_000)

  it.scopedLive("--data DIR: each node uses its identity and node.json there and logs to node.log; text output", () =>
    Effect.gen(function*() {
      const dataDir = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join("/tmp", "weft-test-"))),
        (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
      const identity = Identity.generate()
      Fs.mkdirSync(Path.join(dataDir, "node-0"), { mode: 0o700 })
      Fs.writeFileSync(Path.join(dataDir, "node-0", "identity.json"), Identity.toKeyFile(identity), { mode: 0o600 })
      const port = yield* freeUdpPort
      Fs.mkdirSync(Path.join(dataDir, "node-1"), { mode: 0o700 })
      Fs.writeFileSync(Path.join(dataDir, "node-1", "node.json"), JSON.stringify({ transports: [{ kind: "udp", port }] }))

      const result = yield* Weft.run(["dev", "--nodes", "2", "--for", "3s", "--data", dataDir], "60 seconds")
      assert.strictEqual(result.code, 0, result.stderr)
      assert.match(result.stdout, /^weft dev: 2 nodes, each in its own process, over UDP; data in /)
      const nodeLine = (i: number, id: string, port: string) =>
        new RegExp(`^  node ${i} {2}${id} {2}udp:127\\.0\\.0\\.1:${port} {2}control ${dataDir}/node-${i}/control\\.sock$`, "m")
      assert.match(result.stdout, nodeLine(0, identity.id, "\\d+"))
      assert.match(result.stdout, nodeLine(1, "[a-z2-7]{52}", String(port)))
      assert.match(result.stdout, /\] peers 1\/1 {2}messages\/s \d/)
      assert.match(result.stdout, /stopped 2 nodes \(time is up\)\n$/)

      for (const node of ["node-0", "node-1"]) {
        assert.isTrue(Fs.existsSync(Path.join(dataDir, node, "identity.json")))
        assert.isTrue(Fs.existsSync(Path.join(dataDir, node, "node.log")))
        assert.isFalse(Fs.existsSync(Path.join(dataDir, node, "control.sock")))
      }
    }), 90_000)
})
