import { Rpc, RpcGroup } from "@effect/rpc"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Schema } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Actor from "../src/Actor.js"
import * as Control from "../src/Control.js"
import * as Identity from "../src/Identity.js"
import { Link } from "../src/Link.js"
import * as Node from "../src/Node.js"
import * as NodeRpc from "../src/NodeRpc.js"
import * as TransportMemory from "../src/TransportMemory.js"

class Echo extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("WhoAmI", { success: Schema.String })
).middleware(NodeRpc.PeerMiddleware) {}

const EchoLive = Node.serve(Echo, {
  Echo: ({ text }) => Effect.succeed(text),
  WhoAmI: () => NodeRpc.RemotePeer
}, { name: "echo" })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-node-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

// Builds a node in its own scope and returns its context.
const startNode = (network: TransportMemory.MemoryNetwork, dataDir: string, psk?: Uint8Array) =>
  Layer.build(EchoLive.pipe(Layer.provideMerge(Node.layer({
    dataDir,
    transport: TransportMemory.layer(network),
    network: psk === undefined ? undefined : { psk }
  }))))

describe("Node", () => {
  it.scopedLive("serves a user RpcGroup with one client type for this node and a peer", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const network = yield* TransportMemory.makeNetwork()
      const a = yield* startNode(network, Path.join(dir, "a"))
      const b = yield* startNode(network, Path.join(dir, "b"))
      const nodeA = Effect.runSync(Node.Node.pipe(Effect.provide(a)))
      const nodeB = Effect.runSync(Node.Node.pipe(Effect.provide(b)))

      const result = yield* Effect.gen(function*() {
        const peer = yield* nodeA.connect((yield* nodeB.status).transports[0]!.address)
        assert.strictEqual(peer, nodeB.id)
        const local = yield* Node.client(Echo)
        const remote = yield* Node.client(Echo, nodeB.id)
        return {
          local: yield* local.Echo({ text: "here" }),
          remote: yield* remote.Echo({ text: "there" }),
          remoteSeesCaller: yield* remote.WhoAmI(),
          localSeesCaller: yield* local.WhoAmI()
        }
      }).pipe(Effect.provide(a))
      assert.deepStrictEqual(result, {
        local: "here",
        remote: "there",
        remoteSeesCaller: nodeA.id,
        localSeesCaller: nodeA.id
      })
    }))

  it.scopedLive("tells and asks an actor on a peer through the node's registry", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const network = yield* TransportMemory.makeNetwork()
      const a = yield* startNode(network, Path.join(dir, "a"))
      const b = yield* startNode(network, Path.join(dir, "b"))
      const nodeB = Effect.runSync(Node.Node.pipe(Effect.provide(b)))
      yield* Actor.spawn("counter", {
        message: Schema.Number,
        reply: Schema.Number,
        initial: Effect.succeed(0),
        receive: (total, n) => Effect.succeed([total + n, total + n] as const),
        mailbox: { capacity: 16, overflow: "reject" },
        supervision: "restart"
      }).pipe(Effect.provide(b))
      const total = yield* Effect.gen(function*() {
        const nodeA = yield* Node.Node
        yield* nodeA.connect((yield* nodeB.status).transports[0]!.address)
        const counter = yield* Actor.ref(`${nodeB.id}/counter`, { message: Schema.Number, reply: Schema.Number })
        yield* counter.tell(2)
        return yield* counter.ask(3)
      }).pipe(Effect.provide(a))
      assert.strictEqual(total, 5)
    }))

  it.scopedLive("serves status and generic calls to local tools on its control socket", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const network = yield* TransportMemory.makeNetwork()
      const dataDir = Path.join(dir, "a")
      const a = yield* startNode(network, dataDir)
      const nodeA = Effect.runSync(Node.Node.pipe(Effect.provide(a)))
      assert.strictEqual(nodeA.control, Control.socketPath(dataDir))
      assert.strictEqual((Fs.statSync(dataDir).mode & 0o777), 0o700)
      // The identity was created in the data directory and is the node's.
      const identity = yield* Identity.load(Path.join(dataDir, Node.identityFileName))
      assert.strictEqual(identity.id, nodeA.id)

      const control = yield* Control.client(dataDir)
      const status = yield* control.Status()
      assert.strictEqual(status.id, nodeA.id)
      assert.strictEqual(status.pid, process.pid)
      assert.deepStrictEqual(status.transports.map((t) => t.kind), ["mem"])
      assert.deepStrictEqual(status.services, [{ name: "echo", methods: ["Echo", "WhoAmI"] }])
      const exit = yield* control.Call({ service: "echo", method: "Echo", payload: { text: "via control" } })
      assert.deepStrictEqual(exit, { _tag: "Success", value: "via control" })
      const unknown = yield* Effect.exit(control.Call({ service: "nope", method: "Echo", payload: {} }))
      assert.isTrue(Exit.isFailure(unknown))
    }))

  it.scopedLive("refuses a second node on the same data directory and removes its socket on stop", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const network = yield* TransportMemory.makeNetwork()
      const dataDir = Path.join(dir, "a")
      const socket = Control.socketPath(dataDir)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* startNode(network, dataDir)
        const second = yield* Effect.exit(Effect.scoped(startNode(network, dataDir)))
        assert.isTrue(Exit.isFailure(second))
        assert.isTrue(Fs.existsSync(socket))
      }))
      assert.isFalse(Fs.existsSync(socket))
      const missing = yield* Effect.flip(Effect.scoped(Control.client(dataDir)))
      assert.strictEqual(missing.reason, "Control")
    }))

  it.scopedLive("with a network key, nodes talk over the secure link; a node with another key gets nowhere", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const network = yield* TransportMemory.makeNetwork()
      const psk = new Uint8Array(32).fill(7)
      const a = yield* startNode(network, Path.join(dir, "a"), psk)
      const b = yield* startNode(network, Path.join(dir, "b"), psk)
      const stranger = yield* startNode(network, Path.join(dir, "c"), new Uint8Array(32).fill(8))
      const nodeB = Effect.runSync(Node.Node.pipe(Effect.provide(b)))
      const addressB = (yield* nodeB.status).transports[0]!.address
      const echoed = yield* Effect.gen(function*() {
        yield* (yield* Node.Node).connect(addressB)
        const remote = yield* Node.client(Echo, nodeB.id)
        return yield* remote.Echo({ text: "sealed" })
      }).pipe(Effect.provide(a))
      assert.strictEqual(echoed, "sealed")
      const refused = yield* Effect.flip((yield* Node.Node.pipe(Effect.provide(stranger))).connect(addressB))
      assert.strictEqual(refused._tag, "MessageError")
      const link = yield* Link.pipe(Effect.provide(b))
      assert.deepStrictEqual((yield* link.peers).map((peer) => peer.peer), [Effect.runSync(Node.Node.pipe(Effect.provide(a))).id])
    }), 60_000)
})
