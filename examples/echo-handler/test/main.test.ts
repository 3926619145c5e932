import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { program } from "../src/main.js"

describe("examples/echo-handler", () => {
  it.live("calls Echo on this node and on a peer with the same client code, with the same results", () =>
    Effect.gen(function*() {
      const result = yield* program
      const expected = { echoed: "hello", countdown: [3, 2, 1, 0], refused: "EmptyText", caller: result.a }
      assert.deepStrictEqual(result.local, expected)
      assert.deepStrictEqual(result.remote, expected)
      assert.notStrictEqual(result.a, result.b)
    }))
})
