import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Either } from "effect"
import * as NodeConfig from "../src/NodeConfig.js"

describe("NodeConfig", () => {
  it.effect("decodes transports, limits (durations as text) and connect", () =>
    Effect.gen(function*() {
      const config = yield* NodeConfig.decode("node.json", {
        transports: [{ kind: "udp", host: "::1", port: 7100 }],
        limits: { peersMax: 64, callTimeout: "5 seconds", handshakeAttemptTimeout: "500ms" },
        connect: ["udp:127.0.0.1:7101", "udp:[::1]:7102"]
      })
      assert.deepStrictEqual(config.transports, [{ kind: "udp", host: "::1", port: 7100 }])
      assert.strictEqual(config.limits?.peersMax, 64)
      assert.isTrue(Duration.equals(config.limits!.callTimeout!, Duration.seconds(5)))
      assert.isTrue(Duration.equals(config.limits!.handshakeAttemptTimeout!, Duration.millis(500)))
      assert.deepStrictEqual(config.connect, ["udp:127.0.0.1:7101", "udp:[::1]:7102"])
    }))

  it.effect("resolve: defaults to UDP on 127.0.0.1, any port; --listen replaces transports; --connect adds", () =>
    Effect.gen(function*() {
      const empty = yield* NodeConfig.resolve({}, { listen: [], connect: [] })
      assert.deepStrictEqual(empty, { transport: { kind: "udp", host: "127.0.0.1", port: 0 }, limits: {}, connect: [] })

      const config = yield* NodeConfig.decode("node.json", { transports: [{ kind: "udp", port: 7100 }], connect: ["udp:127.0.0.1:7101"] })
      const fromFile = yield* NodeConfig.resolve(config, { listen: [], connect: ["udp:127.0.0.1:7102", "udp:127.0.0.1:7101"] })
      assert.deepStrictEqual(fromFile.transport, { kind: "udp", host: "127.0.0.1", port: 7100 })
      assert.deepStrictEqual(fromFile.connect, ["udp:127.0.0.1:7101", "udp:127.0.0.1:7102"])

      const listened = yield* NodeConfig.resolve(config, { listen: ["udp:[::1]:0"], connect: [] })
      assert.deepStrictEqual(listened.transport, { kind: "udp", host: "::1", port: 0 })
    }))

  it("parseListen takes port 0 and refuses what is not a udp address", () => {
    assert.deepStrictEqual(NodeConfig.parseListen("udp:0.0.0.0:0"), Either.right({ kind: "udp", host: "0.0.0.0", port: 0 }))
    assert.deepStrictEqual(NodeConfig.parseListen("udp:127.0.0.1:7100"), Either.right({ kind: "udp", host: "127.0.0.1", port: 7100 }))
    for (const bad of ["127.0.0.1:7100", "udp:localhost:7100", "udp:127.0.0.1:00", "udp:127.0.0.1:65536", "udp:127.0.0.1", ""]) {
      assert.isTrue(Either.isLeft(NodeConfig.parseListen(bad)), bad)
    }
  })
})
