/**
 * A message relayed across 50 full simulated nodes (secure link, reliable streams, gossip, this
 * service) in virtual time: core's `Simulation` rather than `TestClock`, because `TestClock.adjust`
 * polls fibers with real timers and 50 nodes wake it hundreds of thousands of times (the core
 * simulation test gives the numbers); the virtual clock is exact and replays from its seed.
 */
import { Entropy, Identity, Messages, Node, Simulation, TransportSim } from "@weft/core"
import { Cause, Context, Effect, Exit, Layer, Random, Stream } from "effect"
import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import * as Chain from "../src/Chain.js"
import * as EphemeralLimits from "../src/EphemeralLimits.js"
import * as EphemeralNode from "../src/EphemeralNode.js"
import * as MessageModule from "../src/Message.js"
import * as Pow from "../src/Pow.js"
import { bytesOf, cheapParams } from "./fixtures.js"

const seed = Number(process.env.WEFT_SIM_SEED ?? 1)
const nodeCount = 50
const degree = 3
const ttlSeconds = 40

interface SimNode {
  readonly index: number
  readonly address: string
  readonly context: Context.Context<Node.Services | EphemeralNode.EphemeralNode>
  readonly service: EphemeralNode.EphemeralNode["Type"]
  /** How many times each message id (hex) was delivered to this node. */
  readonly deliveries: Map<string, number>
}

const startNode = (network: TransportSim.SimNetwork, chain: Chain.Memory, index: number) =>
  Effect.gen(function*() {
    const identity = Identity.generate(new Uint8Array(createHash("sha256").update(`ephemeral-sim/${seed}/${index}`).digest()))
    const ephemeral = EphemeralNode.layer({ relay: true, store: true, algorithms: [Pow.sha256(cheapParams)] }).pipe(
      Layer.provide(Layer.merge(EphemeralLimits.layer(), Chain.layerMemory(chain)))
    )
    const layer = ephemeral.pipe(Layer.provideMerge(Node.layer({
      dataDir: `/nonexistent/weft-ephemeral-sim/${index}`,
      identity,
      control: false,
      transport: TransportSim.layer(network, { address: `sim:${index}` }),
      network: { psk: new Uint8Array(createHash("sha256").update(`ephemeral-sim/psk/${seed}`).digest()) },
      entropy: Entropy.layerSeeded(`ephemeral-sim/entropy/${seed}/${index}`)
    })))
    const context = yield* Layer.build(layer).pipe(Effect.orDie)
    const service = Context.get(context, EphemeralNode.EphemeralNode)
    const deliveries = new Map<string, number>()
    const stream = yield* service.subscribe
    yield* Effect.forkScoped(Stream.runForEach(stream, (delivered) =>
      Effect.sync(() => {
        const id = MessageModule.idHex(delivered.message)
        deliveries.set(id, (deliveries.get(id) ?? 0) + 1)
      })))
    return { index, address: `sim:${index}`, context, service, deliveries } satisfies SimNode
  })

const connect = (nodes: ReadonlyArray<SimNode>) =>
  Effect.gen(function*() {
    for (const node of nodes) {
      const messages = Context.get(node.context, Messages.Messages)
      const peers = new Set([(node.index + 1) % nodes.length])
      while (peers.size < degree) {
        const other = yield* Random.nextIntBetween(0, nodes.length)
        if (other !== node.index) peers.add(other)
      }
      for (const peer of peers) yield* Effect.either(messages.connect(nodes[peer]!.address))
    }
  })

interface Report {
  readonly deliveredOnce: number
  readonly deliveredTwice: number
  readonly storedBeforeTtl: number
  readonly lookupsBeforeTtl: number
  readonly lookupsAtTtl: number
  readonly storedAfterSweep: number
}

const program = Effect.scoped(Effect.gen(function*() {
  const network = yield* TransportSim.makeNetwork({ seed, latency: { minMs: 5, maxMs: 40 } })
  const chain = Chain.makeMemory({ blocks: 3 })
  const nodes: Array<SimNode> = []
  for (let index = 0; index < nodeCount; index++) nodes.push(yield* startNode(network, chain, index))
  yield* connect(nodes)
  // Let sessions, subscriptions and the gossip tree settle.
  yield* Effect.sleep("8 seconds")
  const info = yield* nodes[0]!.service.info
  const encoded = yield* EphemeralNode.build(info, { id: bytesOf(`sim-${seed}`, 64), payload: bytesOf("hello", 300), ttl: `${ttlSeconds} seconds` })
  const submitted = yield* nodes[0]!.service.submit(encoded)
  const ttlMs = (info.nowSeconds + ttlSeconds) * 1000
  yield* Effect.sleep("10 seconds")
  const counts = nodes.map((node) => node.deliveries.get(submitted.id) ?? 0)
  const storedBeforeTtl = (yield* Effect.forEach(nodes, (node) => node.service.stats)).filter((stats) => stats.store?.messages === 1).length
  const prefix = encoded.subarray(2, 10)
  const lookupsBeforeTtl = (yield* Effect.forEach(nodes, (node) => node.service.lookup(prefix))).filter((found) => found.length === 1).length
  // Sleep until the TTL exactly: every node stops returning it at once.
  const nowMs = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
  yield* Effect.sleep(ttlMs - nowMs)
  const lookupsAtTtl = (yield* Effect.forEach(nodes, (node) => node.service.lookup(prefix))).filter((found) => found.length > 0).length
  yield* Effect.sleep("2 seconds")
  const stats = yield* Effect.forEach(nodes, (node) => node.service.stats)
  return {
    deliveredOnce: counts.filter((count) => count === 1).length,
    deliveredTwice: counts.filter((count) => count > 1).length,
    storedBeforeTtl,
    lookupsBeforeTtl,
    lookupsAtTtl,
    storedAfterSweep: stats.reduce((sum, s) => sum + (s.store?.messages ?? 0), 0)
  } satisfies Report
}))

describe(`ephemeral relay: ${nodeCount} simulated nodes`, () => {
  it(`a message reaches every node exactly once and disappears everywhere at its TTL (seed ${seed})`, async () => {
    const exit = await Simulation.run(program, { seed })
    if (Exit.isFailure(exit)) throw new Error(`simulation failed (seed ${seed}): ${Cause.pretty(exit.cause)}`)
    const report = exit.value
    expect(report.deliveredOnce).toBe(nodeCount)
    expect(report.deliveredTwice).toBe(0)
    expect(report.storedBeforeTtl).toBe(nodeCount)
    expect(report.lookupsBeforeTtl).toBe(nodeCount)
    expect(report.lookupsAtTtl).toBe(0)
    expect(report.storedAfterSweep).toBe(0)
  }, 240_000)
})
