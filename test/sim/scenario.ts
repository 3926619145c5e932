/**
 * The network simulation: N nodes in one process over the simulated transport, with the secure link
 * and reliable streams of a real node, in virtual
 * time with one seeded `Random` (`Simulation` in core), exchanging RPC calls and actor
 * messages through loss, duplication, reordering and a partition that heals.
 *
 * What must hold (checked by `violations`):
 * - every call completes or fails with a typed error (never a defect, never a hang);
 * - per-stream order: each actor sees the numbers a sender told it strictly increasing (no duplicate,
 *   no reordering; a loss is allowed and shows as a gap);
 * - the run is a pure function of its seed: `traceHash` covers every cell delivery and every outcome.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Actor, Entropy, Identity, Messages, Node, Simulation, TransportSim } from "@weft/core"
import type { NodeId as NodeIdModule } from "@weft/core"
import type { Context } from "effect"
import { Cause, Duration, Effect, Exit, Fiber, Layer, Option, Random, Schema } from "effect"

type NodeId = NodeIdModule.NodeId
import { createHash } from "node:crypto"

/** What a run is made of. */
export interface Options {
  readonly seed: number
  readonly nodes: number
  /** Peers each node dials at the start (besides being dialed). */
  readonly degree: number
  /** Simulated duration of the workload. */
  readonly durationMs: number
  readonly loss: number
  readonly duplicate: number
  readonly reorder: number
  /** When the network splits in two halves, and when it heals (simulated ms from the start). */
  readonly partitionAtMs: number
  readonly healAtMs: number
}

/** The defaults: the `npm test` size. */
export const defaults: Options = {
  seed: 1,
  nodes: 100,
  degree: 3,
  durationMs: 120_000,
  loss: 0.05,
  duplicate: 0.03,
  reorder: 0.05,
  partitionAtMs: 30_000,
  healAtMs: 60_000
}

/** What a run reports. */
export interface Report {
  readonly seed: number
  readonly nodes: number
  readonly calls: number
  readonly callsOk: number
  /** Typed failures by `_tag:reason`. */
  readonly callFailures: Record<string, number>
  readonly callsOkAfterHeal: number
  readonly tells: number
  readonly tellsDelivered: number
  readonly duplicatesDropped: number
  readonly gapsSkipped: number
  readonly cellsDelivered: number
  readonly cellsLost: number
  readonly cellsDuplicated: number
  readonly violations: ReadonlyArray<string>
  readonly traceHash: string
  readonly wallSeconds: number
}

class SimEcho extends RpcGroup.make(
  Rpc.make("Echo", { payload: { from: Schema.Number, n: Schema.Number }, success: Schema.Number })
) {}

const Told = Schema.Struct({ from: Schema.Number, n: Schema.Number })

/** Everything the workload fibers share. */
interface World {
  readonly options: Options
  readonly nodes: ReadonlyArray<SimNode>
  readonly outcomes: Array<string>
  readonly violations: Array<string>
  readonly calls: { total: number; ok: number; okAfterHeal: number; failures: Record<string, number> }
  readonly tells: { sent: number; delivered: number }
  healed: boolean
}

interface SimNode {
  readonly index: number
  readonly id: NodeId
  readonly address: string
  readonly context: Context.Context<Node.Services>
}

const callTimeout = Duration.seconds(5)

/** Runs one simulation to completion, in virtual time, and reports. */
export const run = async (options: Options): Promise<Report> => {
  const exit = await Simulation.run(program(options), { seed: options.seed })
  if (Exit.isFailure(exit)) throw new Error(`simulation ${options.seed} failed: ${Cause.pretty(exit.cause)}`)
  return exit.value
}

const program = (options: Options): Effect.Effect<Report> =>
  Effect.scoped(
    Effect.gen(function*() {
      const started = performance.now()
      const network = yield* TransportSim.makeNetwork({
        seed: options.seed,
        latency: { minMs: 5, maxMs: 40 },
        loss: options.loss,
        duplicate: options.duplicate,
        reorder: options.reorder
      })
      const world: World = {
        options,
        nodes: [],
        outcomes: [],
        violations: [],
        calls: { total: 0, ok: 0, okAfterHeal: 0, failures: {} },
        tells: { sent: 0, delivered: 0 },
        healed: false
      }
      for (let index = 0; index < options.nodes; index++) {
        ;(world.nodes as Array<SimNode>).push(yield* startNode(world, network, index))
      }
      const workload = yield* Effect.forkScoped(Effect.all(world.nodes.map((node) => nodeWorkload(world, node)), {
        concurrency: "unbounded",
        discard: true
      }))
      yield* drive(world, network, workload)
      return yield* report(world, network, started)
    })
  ).pipe(Effect.orDie)

const networkKey = (seed: number): Uint8Array =>
  new Uint8Array(createHash("sha256").update(`weft-sim/psk/${seed}`).digest())

const startNode = (world: World, network: TransportSim.SimNetwork, index: number) =>
  Effect.gen(function*() {
    const seed = createHash("sha256").update(`weft-sim/${world.options.seed}/${index}`).digest()
    const identity = Identity.generate(new Uint8Array(seed))
    const nodeLayer = Node.serve(SimEcho, { Echo: ({ n }) => Effect.succeed(n) }).pipe(
      Layer.provideMerge(Node.layer({
        dataDir: `/nonexistent/weft-sim/${index}`,
        identity,
        control: false,
        transport: TransportSim.layer(network, { address: `sim:${index}` }),
        network: { psk: networkKey(world.options.seed) },
        entropy: Entropy.layerSeeded(`weft-sim/entropy/${world.options.seed}/${index}`),
        limits: { callTimeout }
      }))
    )
    const context = yield* Layer.build(nodeLayer).pipe(Effect.orDie)
    const sink = new Map<number, number>()
    yield* Actor.spawn("sink", {
      message: Told,
      reply: Schema.Null,
      initial: Effect.succeed(sink),
      receive: (seen, told) => Effect.sync(() => {
        const last = seen.get(told.from) ?? -1
        if (told.n <= last) {
          world.violations.push(`node ${index} got ${told.n} from ${told.from} after ${last} (duplicate or reordered)`)
        }
        seen.set(told.from, told.n)
        world.tells.delivered++
        return [null, seen] as const
      }),
      mailbox: { capacity: 1024, overflow: "dropOldest" },
      supervision: "resume"
    }).pipe(Effect.provide(context))
    const node = Effect.runSync(Node.Node.pipe(Effect.provide(context)))
    return { index, id: node.id, address: `sim:${index}`, context } satisfies SimNode
  })

// The peers a node talks to: its ring neighbour and `degree - 1` random others.
const choosePeers = (world: World, node: SimNode) =>
  Effect.gen(function*() {
    const peers = new Set<number>([(node.index + 1) % world.nodes.length])
    while (peers.size < Math.min(world.options.degree, world.nodes.length - 1)) {
      const other = yield* Random.nextIntBetween(0, world.nodes.length)
      if (other !== node.index) peers.add(other)
    }
    return [...peers].map((index) => world.nodes[index]!)
  })

const nodeWorkload = (world: World, node: SimNode) =>
  Effect.gen(function*() {
    const peers = yield* choosePeers(world, node)
    const told = new Map<number, number>()
    const clients = new Map<number, Effect.Effect.Success<ReturnType<typeof Node.client<RpcGroup.Rpcs<typeof SimEcho>>>>>()
    for (let round = 0; ; round++) {
      yield* Effect.sleep(Duration.millis(yield* Random.nextIntBetween(200, 1200)))
      const peer = peers[yield* Random.nextIntBetween(0, peers.length)]!
      yield* ensureConnected(node, peer)
      let client = clients.get(peer.index)
      if (client === undefined) {
        client = yield* Node.client(SimEcho, peer.id)
        clients.set(peer.index, client)
      }
      yield* recordCall(world, node, peer, client.Echo({ from: node.index, n: round }))
      const n = (told.get(peer.index) ?? -1) + 1
      told.set(peer.index, n)
      const sink = yield* Actor.ref(`${peer.id}/sink`, { message: Told, reply: Schema.Null })
      const tell = yield* Effect.exit(sink.tell({ from: node.index, n }))
      world.tells.sent++
      world.outcomes.push(`t${node.index}>${peer.index}:${Exit.isSuccess(tell) ? "ok" : "fail"}`)
    }
  }).pipe(Effect.provide(node.context), Effect.scoped)

const ensureConnected = (node: SimNode, peer: SimNode) =>
  Effect.gen(function*() {
    const messages = yield* Messages.Messages
    if ((yield* messages.peers).includes(peer.id)) return
    yield* Effect.either(messages.connect(peer.address))
  }).pipe(Effect.provide(node.context))

const recordCall = (world: World, node: SimNode, peer: SimNode, call: Effect.Effect<number, unknown>) =>
  Effect.gen(function*() {
    // A hang would outlive the client's own timeout; this outer bound turns it into a violation.
    const exit = yield* Effect.exit(Effect.timeout(call, Duration.sum(callTimeout, Duration.seconds(5))))
    world.calls.total++
    const outcome = classify(exit)
    if (outcome === "ok") {
      world.calls.ok++
      if (world.healed) world.calls.okAfterHeal++
    } else if (outcome.startsWith("violation")) {
      world.violations.push(`call ${node.index}>${peer.index}: ${outcome}`)
    } else {
      world.calls.failures[outcome] = (world.calls.failures[outcome] ?? 0) + 1
    }
    world.outcomes.push(`c${node.index}>${peer.index}:${outcome}`)
  })

const typedErrors = new Set(["RpcClientError", "MessageError", "ActorError"])

const classify = (exit: Exit.Exit<number, unknown>): string => {
  if (Exit.isSuccess(exit)) return "ok"
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return `violation: not a typed failure: ${Cause.pretty(exit.cause).slice(0, 200)}`
  const error = failure.value as { _tag?: string; reason?: string }
  if (error._tag === "TimeoutException") return "violation: the call hung past its timeout"
  if (!typedErrors.has(error._tag ?? "")) return `violation: untyped failure ${String(error._tag)}`
  return `${error._tag}:${error.reason ?? ""}`
}

// Splits and heals the network on schedule while the workload runs, then stops it.
const drive = (world: World, network: TransportSim.SimNetwork, workload: Fiber.RuntimeFiber<void, unknown>) =>
  Effect.gen(function*() {
    const { durationMs, healAtMs, partitionAtMs } = world.options
    const half = world.nodes.slice(0, world.nodes.length / 2).map((node) => node.address)
    yield* Effect.sleep(Duration.millis(partitionAtMs))
    yield* network.partition([half])
    yield* Effect.sleep(Duration.millis(healAtMs - partitionAtMs))
    yield* network.heal
    world.healed = true
    yield* Effect.sleep(Duration.millis(durationMs - healAtMs))
    yield* Fiber.interrupt(workload)
  })

const report = (world: World, network: TransportSim.SimNetwork, started: number) =>
  Effect.gen(function*() {
    let duplicatesDropped = 0
    let gapsSkipped = 0
    for (const node of world.nodes) {
      const stats = yield* Effect.flatMap(Messages.Messages, (m) => m.stats).pipe(Effect.provide(node.context))
      duplicatesDropped += stats.duplicatesDropped
      gapsSkipped += stats.gapsSkipped
    }
    const net = yield* network.stats
    const outcomesHash = createHash("sha256").update(world.outcomes.join("\n")).digest("hex").slice(0, 16)
    return {
      seed: world.options.seed,
      nodes: world.nodes.length,
      calls: world.calls.total,
      callsOk: world.calls.ok,
      callFailures: world.calls.failures,
      callsOkAfterHeal: world.calls.okAfterHeal,
      tells: world.tells.sent,
      tellsDelivered: world.tells.delivered,
      duplicatesDropped,
      gapsSkipped,
      cellsDelivered: net.cellsDelivered,
      cellsLost: net.cellsDroppedLoss + net.cellsDroppedPartition,
      cellsDuplicated: net.cellsDuplicated,
      violations: world.violations,
      traceHash: `${yield* network.traceHash}-${outcomesHash}`,
      wallSeconds: Number(((performance.now() - started) / 1000).toFixed(1))
    } satisfies Report
  })
