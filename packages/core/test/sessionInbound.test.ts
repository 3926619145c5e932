import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Mailbox } from "effect"
import * as Inbound from "../src/internal/sessionInbound.js"

const makeInbound = Effect.gen(function*() {
  const inbound: Inbound.Inbound = {
    inbox: yield* Mailbox.make<Uint8Array>({ capacity: 2, strategy: "dropping" }),
    closedSignal: yield* Deferred.make<void>(),
    handler: undefined
  }
  return inbound
})

describe("sessionInbound", () => {
  it.scoped("frames queued before `receive` come first, then every frame goes straight to the callback", () =>
    Effect.gen(function*() {
      const inbound = yield* makeInbound
      assert.isTrue(Inbound.deliver(inbound, Uint8Array.of(1)))
      assert.isTrue(Inbound.deliver(inbound, Uint8Array.of(2)))
      assert.isFalse(Inbound.deliver(inbound, Uint8Array.of(3)), "the inbox is full: the caller counts the drop")
      const got: Array<number> = []
      const reader = yield* Effect.fork(Inbound.receive(inbound)((frame) => got.push(frame[0]!)))
      yield* Effect.yieldNow()
      for (let n = 4; n < 10; n++) assert.isTrue(Inbound.deliver(inbound, Uint8Array.of(n)), "no bound once a callback reads")
      assert.deepStrictEqual(got, [1, 2, 4, 5, 6, 7, 8, 9])
      Deferred.unsafeDone(inbound.closedSignal, Exit.void)
      yield* Fiber.join(reader)
      assert.isUndefined(inbound.handler, "the callback is released when the session closes")
    }))

  it.scoped("a second reader is a defect", () =>
    Effect.gen(function*() {
      const inbound = yield* makeInbound
      yield* Effect.fork(Inbound.receive(inbound)(() => {}))
      yield* Effect.yieldNow()
      const second = yield* Effect.exit(Inbound.receive(inbound)(() => {}))
      assert.isTrue(Exit.isFailure(second) && Cause.isDie(second.cause), "a defect, not a typed error or an interruption")
    }))
})
