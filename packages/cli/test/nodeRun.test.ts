import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Control } from "../src/internal/core.js"
import * as Weft from "./weft.js"

interface Ready {
  readonly event: string
  readonly id: string
  readonly pid: number
  readonly control: string
  readonly transports: ReadonlyArray<{ readonly kind: string; readonly address: string }>
}

// Kept short: a control socket path must fit in 107 bytes.
const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join("/tmp", "weft-run-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const firstLine = (running: Weft.Running) => Effect.map(Weft.takeUntil(running, (line) => line, () => true, "60 seconds"), (lines) => lines[0]!)

// Polls the node's status in this process (cheaper than a `weft` process per try) until `done` holds.
const statusUntil = (control: string, done: (status: Control.Status) => boolean) =>
  Effect.scoped(Effect.flatMap(Control.client(control), (client) => client.Status())).pipe(
    Effect.filterOrFail(done, () => new Error(`the node at ${control} did not reach the expected status`)),
    Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.intersect(Schedule.recurs(50))))
  )

const stop = (running: Weft.Running) =>
  Effect.zipRight(
    Effect.sync(() => running.child.kill("SIGTERM")),
    running.exit.pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("no exit after SIGTERM") }))
  )

describe("weft node run", () => {
  it.scopedLive("prints its ready line, serves status and DevPing, dials --connect, and stops cleanly on SIGTERM", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const config = Path.join(dir, "b.json")
      Fs.writeFileSync(config, JSON.stringify({
        transports: [{ kind: "udp", host: "127.0.0.1", port: 0 }],
        limits: { callTimeout: "5 seconds", peersMax: 8 }
      }))

      const a = yield* Weft.start(["node", "run", "--data", Path.join(dir, "a"), "--json"])
      const ready = JSON.parse(yield* firstLine(a)) as Ready
      assert.strictEqual(ready.event, "ready")
      assert.match(ready.id, /^[a-z2-7]{52}$/)
      assert.strictEqual(ready.pid, a.child.pid)
      assert.strictEqual(ready.control, Path.join(dir, "a", "control.sock"))
      assert.lengthOf(ready.transports, 1)
      assert.strictEqual(ready.transports[0]!.kind, "udp")
      // The real port the kernel picked, not the 0 that was asked for.
      const address = ready.transports[0]!.address
      assert.match(address, /^udp:127\.0\.0\.1:[1-9]\d*$/)

      // Text mode, a config file, and --connect to the first node.
      const b = yield* Weft.start(["node", "run", "--data", Path.join(dir, "b"), "--config", config, "--connect", address])
      const text = /^node ([a-z2-7]{52}) listening on (udp:127\.0\.0\.1:[1-9]\d*), control (\S+)$/.exec(yield* firstLine(b))
      assert.isNotNull(text)
      const [, bId, bAddress, bControl] = text!
      assert.strictEqual(bControl, Path.join(dir, "b", "control.sock"))
      assert.notStrictEqual(bAddress, address)
      yield* statusUntil(ready.control, (status) => status.peers.some((peer) => peer.id === bId))

      const [status, call] = yield* Effect.all([
        Weft.run(["node", "status", "--node", Path.join(dir, "a"), "--json"]),
        Weft.run(["node", "call", "--node", ready.control, "--peer", bId!, "DevPing", "Ping", "{\"from\":\"test\"}"])
      ], { concurrency: "unbounded" })
      assert.strictEqual(status.code, 0, status.stderr)
      const reported = JSON.parse(status.stdout)
      assert.strictEqual(reported.id, ready.id)
      assert.strictEqual(reported.pid, ready.pid)
      assert.deepStrictEqual(reported.transports, [{ kind: "udp", address }])
      assert.deepStrictEqual(reported.peers.map((peer: { id: string }) => peer.id), [bId])
      assert.deepStrictEqual(reported.services, [{ name: "DevPing", methods: ["Ping"] }])
      assert.strictEqual(call.code, 0, call.stderr)
      assert.strictEqual(JSON.parse(call.stdout).from, bId)

      const [aExit, bExit] = yield* Effect.all([stop(a), stop(b)], { concurrency: "unbounded" })
      for (const result of [aExit, bExit]) {
        assert.strictEqual(result.code, 0, result.stderr)
        assert.lengthOf(Weft.linesOf(result.stdout), 1)
      }
      assert.isFalse(Fs.existsSync(ready.control))
      assert.isFalse(Fs.existsSync(bControl!))
      assert.isTrue(Fs.existsSync(Path.join(dir, "a", "identity.json")))
    }), 120_000)
})
