import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as CongestionControl from "../src/CongestionControl.js"

const mtu = 1000

/** Sends a full window at `nowMs`, then acknowledges all of it one RTT later; returns the new time. */
const roundTrip = (controller: CongestionControl.Controller, nowMs: number, rttMs: number): number => {
  const packets = Math.floor(controller.windowBytes() / mtu)
  let inFlight = 0
  for (let i = 0; i < packets; i++) {
    assert.isTrue(controller.canSend(inFlight))
    inFlight += mtu
    controller.onPacketSent(mtu, inFlight, nowMs)
  }
  assert.isFalse(controller.canSend(inFlight))
  for (let i = 0; i < packets; i++) controller.onAck(mtu, nowMs, nowMs + rttMs)
  return nowMs + rttMs
}

describe("NewReno", () => {
  it("starts at ten packets and doubles per round trip in slow start", () => {
    const controller = CongestionControl.newReno(mtu)
    assert.strictEqual(controller.windowBytes(), 10 * mtu)
    let nowMs = 0
    const windows: Array<number> = []
    for (let round = 0; round < 4; round++) {
      nowMs = roundTrip(controller, nowMs, 50)
      windows.push(controller.windowBytes())
    }
    assert.deepStrictEqual(windows, [20, 40, 80, 160].map((packets) => packets * mtu))
  })

  it("halves on loss, once per recovery period", () => {
    const controller = CongestionControl.newReno(mtu)
    let nowMs = roundTrip(controller, 0, 50) // 20 packets
    nowMs = roundTrip(controller, nowMs, 50) // 40 packets
    controller.onLoss(mtu, nowMs - 10, nowMs)
    assert.strictEqual(controller.windowBytes(), 20 * mtu)
    // Further losses of packets sent before the recovery began do not cut again (fast recovery).
    controller.onLoss(3 * mtu, nowMs - 5, nowMs + 1)
    assert.strictEqual(controller.windowBytes(), 20 * mtu)
    // Acknowledgements of those packets do not grow the window either.
    controller.onAck(mtu, nowMs - 5, nowMs + 2)
    assert.strictEqual(controller.windowBytes(), 20 * mtu)
    // A loss of a packet sent after the recovery began is a new congestion event.
    controller.onLoss(mtu, nowMs + 3, nowMs + 60)
    assert.strictEqual(controller.windowBytes(), 10 * mtu)
  })

  it("grows by one packet per round trip in congestion avoidance", () => {
    const controller = CongestionControl.newReno(mtu)
    let nowMs = roundTrip(controller, 0, 50)
    controller.onLoss(mtu, nowMs - 1, nowMs) // 20 → 10 packets, slow-start threshold 10
    nowMs += 1
    const windows: Array<number> = []
    for (let round = 0; round < 3; round++) {
      nowMs = roundTrip(controller, nowMs, 50)
      windows.push(controller.windowBytes() / mtu)
    }
    assert.deepStrictEqual(windows, [11, 12, 13])
  })

  it("falls to the minimum window on a retransmission timeout and slow-starts again", () => {
    const controller = CongestionControl.newReno(mtu, { initialWindowPackets: 8, minimumWindowPackets: 2 })
    let nowMs = roundTrip(controller, 0, 50) // 16 packets
    controller.onTimeout(nowMs)
    assert.strictEqual(controller.windowBytes(), 2 * mtu)
    nowMs = roundTrip(controller, nowMs + 1, 50)
    assert.strictEqual(controller.windowBytes(), 4 * mtu) // below the threshold (8): slow start
  })

  it("does not grow a window the sender does not fill", () => {
    const controller = CongestionControl.newReno(mtu)
    // Only two packets in flight at a time (flow control or the application limit the sender).
    for (let i = 0; i < 100; i++) {
      controller.onPacketSent(mtu, 2 * mtu, i)
      controller.onAck(mtu, i, i + 20)
    }
    assert.strictEqual(controller.windowBytes(), 10 * mtu)
  })

  it("never paces and never sends cover", () => {
    const controller = CongestionControl.newReno(mtu)
    assert.isFalse(controller.constantRate)
    assert.strictEqual(controller.nextDepartureMs(), -Infinity)
  })
})

describe("fixed rate", () => {
  it("departs every mtu / rate seconds and skips the slots it missed", () => {
    const controller = CongestionControl.fixedRate(mtu, { bytesPerSecond: 100_000 }) // 10 ms
    assert.isTrue(controller.constantRate)
    assert.strictEqual(controller.nextDepartureMs(), -Infinity)
    controller.onPacketSent(mtu, 0, 1000)
    assert.strictEqual(controller.nextDepartureMs(), 1010)
    controller.onPacketSent(mtu, 0, 1010)
    assert.strictEqual(controller.nextDepartureMs(), 1020)
    controller.onPacketSent(mtu, 0, 1047) // late: the next slot stays on the grid, no burst to catch up
    assert.strictEqual(controller.nextDepartureMs(), 1050)
    // Losses and timeouts do not change the rate.
    controller.onLoss(mtu, 1040, 1050)
    controller.onTimeout(1050)
    assert.isTrue(controller.canSend(1e9))
    assert.strictEqual(controller.windowBytes(), Infinity)
  })

  it("keeps a fractional interval on its grid without drift", () => {
    const controller = CongestionControl.fixedRate(1230, { bytesPerSecond: 1_000_000 }) // 1.23 ms
    let nowMs = 0
    for (let i = 0; i < 10_000; i++) {
      controller.onPacketSent(1230, 0, nowMs)
      nowMs = controller.nextDepartureMs()
    }
    assert.approximately(nowMs, 10_000 * 1.23, 1e-6)
  })

  it("rejects a rate that is not positive", () => {
    assert.throws(() => CongestionControl.layerFixedRate({ bytesPerSecond: 0 }))
  })
})

describe("service", () => {
  it.effect("hands each connection its own controller", () =>
    Effect.gen(function*() {
      const service = yield* CongestionControl.CongestionControl
      const first = service.make(mtu)
      const second = service.make(mtu)
      first.onTimeout(0)
      assert.strictEqual(first.windowBytes(), 2 * mtu)
      assert.strictEqual(second.windowBytes(), 10 * mtu)
      assert.strictEqual(service.name, "newreno")
    }).pipe(Effect.provide(CongestionControl.layer)))

  it.effect("swaps to fixed rate with one layer", () =>
    Effect.gen(function*() {
      const service = yield* CongestionControl.CongestionControl
      assert.strictEqual(service.name, "fixed-rate")
      assert.isTrue(service.make(mtu).constantRate)
    }).pipe(Effect.provide(CongestionControl.layerFixedRate({ bytesPerSecond: 1000 }))))
})
