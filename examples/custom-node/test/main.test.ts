import { assert, describe, it } from "@effect/vitest"
import { Control, Limits, TransportMemory } from "@weft/core"
import { Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { MyNode } from "../src/main.js"

describe("examples/custom-node", () => {
  it.scopedLive("builds a node with its own limits whose service answers on the control socket", () =>
    Effect.gen(function*() {
      const dataDir = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-custom-"))),
        (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
      const network = yield* TransportMemory.makeNetwork()
      const context = yield* Layer.build(MyNode(dataDir, network))
      const limits = yield* Limits.Limits.pipe(Effect.provide(context))
      assert.strictEqual(limits.peersMax, 32)
      const control = yield* Control.client(dataDir)
      assert.deepStrictEqual((yield* control.Status()).services, [{ name: "greeter", methods: ["Greet"] }])
      const exit = yield* control.Call({ service: "greeter", method: "Greet", payload: { name: "weft" } })
      assert.deepStrictEqual(exit, { _tag: "Success", value: "hello, weft" })
    }))
})
