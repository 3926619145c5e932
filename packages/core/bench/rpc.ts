/**
 * Cases 2 and 3: Echo calls through `Node.client`.
 * - local: a client of this node (loopback through the message layer: envelopes encoded and decoded,
 *   schemas run) against `RpcTest.makeClient` (the same group and handler, no serialization);
 * - remote: a client of a peer over the memory transport (RPC → channel → envelopes → LinkPlain
 *   frames and cells → transport, and back) against RpcClient/RpcServer over the custom protocol.
 * Each sequentially and with 64 calls in flight. Clients are built once, before any measurement.
 * Tracing is left at its default (on) everywhere: `Node.client` and `RpcTest` have no option to turn
 * it off, so the custom baseline keeps it too.
 */
import { RpcTest } from "@effect/rpc"
import type { Scope } from "effect"
import { Effect } from "effect"
import * as Node from "../src/Node.js"
import * as CustomProtocol from "./customProtocol.js"
import type { TwoNodes } from "./fixtures.js"
import { batch, concurrent, Echo, echoPayload, EchoHandlersLive, sequential } from "./fixtures.js"
import type { Case, Subject } from "./harness.js"

/** Calls in flight in the concurrent rows. */
export const concurrency = 64

type EchoCall = Effect.Effect<string, unknown>

// Each op makes its call anew, as a caller does (the client checks the payload when the call is made);
// a wrong answer would be a broken path, not a fast one.
const checked = (call: () => EchoCall): EchoCall =>
  Effect.flatMap(Effect.suspend(call), (text) => text === echoPayload.text ? Effect.succeed(text) : Effect.dieMessage(`Echo answered ${text}`))

const subjects = (name: string, call: EchoCall): readonly [Subject, Subject] => [
  { name, run: (ops) => batch(sequential(call, ops)) },
  { name, run: (ops) => batch(concurrent(call, ops, concurrency)) }
]

const rows = (
  bench: string,
  metric: string,
  ops: { readonly sequential: number; readonly concurrent: number },
  subject: readonly [Subject, Subject],
  baseline: readonly [Subject, Subject]
): ReadonlyArray<Case> => [
  { bench: `${bench}, sequential`, metric: `${metric}_seq`, unit: "calls/s", ops: ops.sequential, subject: subject[0], baseline: baseline[0] },
  { bench: `${bench}, c=${concurrency}`, metric: `${metric}_c${concurrency}`, unit: "calls/s", ops: ops.concurrent, subject: subject[1], baseline: baseline[1] }
]

/** The RPC cases over two running nodes; builds every client in the scope. */
export const cases = (nodes: TwoNodes, quick: boolean): Effect.Effect<ReadonlyArray<Case>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const local = yield* Node.client(Echo).pipe(Effect.provide(nodes.a))
    const remote = yield* Node.client(Echo, nodes.idB).pipe(Effect.provide(nodes.a))
    const inProcess = yield* RpcTest.makeClient(Echo).pipe(Effect.provide(EchoHandlersLive))
    const custom = yield* CustomProtocol.makeClient(Echo, EchoHandlersLive)
    const localOps = quick ? { sequential: 1_000, concurrent: 2_000 } : { sequential: 5_000, concurrent: 6_000 }
    const remoteOps = quick ? { sequential: 500, concurrent: 1_000 } : { sequential: 3_000, concurrent: 5_000 }
    return [
      ...rows(
        "local RPC (Node.client, this node)",
        "rpc_local",
        localOps,
        subjects("Node.client", checked(() => local.Echo(echoPayload))),
        subjects("RpcTest", checked(() => inProcess.Echo(echoPayload)))
      ),
      ...rows(
        "RPC over memory transport (Node.client, peer)",
        "rpc_memory",
        remoteOps,
        subjects("Node.client", checked(() => remote.Echo(echoPayload))),
        subjects("custom protocol+msgpack", checked(() => custom.Echo(echoPayload)))
      )
    ]
  })
