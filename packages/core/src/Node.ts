/**
 * A node: identity, limits, link, message layer, RPC router and control endpoint, composed as one Layer
 * over a transport. A build adds its services as layers that need what the node provides, and picks its
 * transport by providing one; a missing dependency is a compile error:
 *
 * ```ts
 * const MyNode = EchoLive.pipe(
 *   Layer.provideMerge(Node.layer({ dataDir: "./data", transport: TransportMemory.layer(network) }))
 * )
 * ```
 *
 * The transport is part of the config (not provided from outside) so that it is built with the node's
 * own limits: the cell size the transport moves and the one the link cuts frames into are one value.
 */
import { Context, Effect, Layer, Stream } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Actor from "./Actor.js"
import * as CongestionControl from "./CongestionControl.js"
import * as Control from "./Control.js"
import * as Entropy from "./Entropy.js"
import * as Gossip from "./Gossip.js"
import * as Identity from "./Identity.js"
import * as Limits from "./Limits.js"
import { Link } from "./Link.js"
import * as LinkPlain from "./LinkPlain.js"
import * as LinkReliable from "./LinkReliable.js"
import * as LinkSecure from "./LinkSecure.js"
import * as Messages from "./Messages.js"
import type { NodeId } from "./NodeId.js"
import * as NodeRpc from "./NodeRpc.js"
import { Transport } from "./Transport.js"
import type { IdentityError, MessageError, TransportError } from "./WeftError.js"
import { NodeError } from "./WeftError.js"

/** How a node is configured. */
export interface Config {
  /** The transport the node listens on, built with the node's limits. */
  readonly transport: Layer.Layer<Transport, TransportError, Limits.Limits>
  /** Holds `identity.json` and `control.sock`; created (mode 0700) when the node needs either. */
  readonly dataDir: string
  /** The node's identity; by default loaded from (or created in) `<dataDir>/identity.json`. */
  readonly identity?: Identity.Identity | undefined
  /** Overrides of the default limits. */
  readonly limits?: Partial<Limits.Values> | undefined
  /** Serve the control socket (default true). */
  readonly control?: boolean | undefined
  /**
   * The network's pre-shared key (32 bytes): sessions use the PSK-gated post-quantum secure link.
   * Without it the node uses `LinkPlain` (authenticated, NOT encrypted) and says so in its log.
   */
  readonly network?: { readonly psk: Uint8Array } | undefined
  /** Congestion control of the node's streams (default NewReno); swapping it is one Layer. */
  readonly congestionControl?: Layer.Layer<CongestionControl.CongestionControl> | undefined
  /** Where random bytes come from (default the OS CSPRNG; a simulation passes a seeded stream). */
  readonly entropy?: Layer.Layer<Entropy.Entropy> | undefined
  /** Gossip pub-sub options (the service always runs; it costs one timer while no topic is used). */
  readonly gossip?: Gossip.Options | undefined
}

/** A running node. */
export class Node extends Context.Tag("@weft/core/Node")<Node, {
  readonly id: NodeId
  readonly dataDir: string
  /** The control socket path, if the node serves one. */
  readonly control: string | undefined
  readonly status: Effect.Effect<Control.Status>
  /** Opens (or reuses) the session with the node at `address`; returns its ID. */
  readonly connect: (address: string) => Effect.Effect<NodeId, MessageError>
}>() {}

/** The file name of the key file inside a data directory. */
export const identityFileName = "identity.json"

/** Everything a node provides to the services built on it. */
export type Services = Node | Gossip.Gossip | Actor.Registry | Messages.Messages | NodeRpc.NodeRpc | Link | Identity.NodeIdentity | Limits.Limits | Transport

/** The node as a layer over a transport. */
export const layer = (config: Config): Layer.Layer<Services, NodeError | IdentityError | TransportError> => {
  const limits = Limits.layer(config.limits ?? {})
  const base = Layer.mergeAll(limits, identityLayer(config), config.transport.pipe(Layer.provide(limits)))
  return Layer.scoped(Node, make(config)).pipe(
    Layer.provideMerge(Layer.mergeAll(NodeRpc.layer, Actor.layer, Gossip.layer(config.gossip))),
    Layer.provideMerge(Messages.layer),
    Layer.provideMerge(linkLayer(config)),
    Layer.provideMerge(base)
  )
}

// The raw link the config asks for, carrying reliable streams.
const linkLayer = (config: Config) => {
  const raw = config.network === undefined
    ? Effect.zipLeft(
      LinkPlain.make,
      Effect.logWarning("no network key: sessions are authenticated but NOT encrypted (LinkPlain)")
    )
    : LinkSecure.make({ psk: config.network.psk })
  return Layer.scoped(Link, Effect.flatMap(raw, LinkReliable.wrap)).pipe(
    Layer.provide(Layer.merge(config.congestionControl ?? CongestionControl.layer, config.entropy ?? Entropy.layer))
  )
}

/** Serves an RpcGroup on the node (see `NodeRpc.serve`). */
export const serve = NodeRpc.serve

/** A client of an RpcGroup on this node or on a peer, with one type for both (see `NodeRpc.client`). */
export const client = NodeRpc.client

const identityLayer = (config: Config): Layer.Layer<Identity.NodeIdentity, NodeError | IdentityError> =>
  config.identity !== undefined
    ? Identity.layer(config.identity)
    : Layer.unwrapEffect(
      ensureDataDir(config.dataDir).pipe(
        Effect.as(Identity.layerFile(Path.join(config.dataDir, identityFileName)))
      )
    )

const ensureDataDir = (dataDir: string): Effect.Effect<void, NodeError> =>
  Effect.try({
    try: () => Fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 }),
    catch: (cause) => new NodeError({ reason: "DataDir", detail: `cannot create data directory ${dataDir}: ${String(cause)}` })
  })

const make = (config: Config) =>
  Effect.gen(function*() {
    const identity = yield* Identity.NodeIdentity
    const limits = yield* Limits.Limits
    const link = yield* Link
    const messages = yield* Messages.Messages
    const rpc = yield* NodeRpc.NodeRpc
    const gossip = yield* Gossip.Gossip
    const transport = yield* Transport
    const control = config.control === false ? undefined : Control.socketPath(config.dataDir)
    const startedAtMs = Date.now()

    const status = Effect.gen(function*() {
      const [peers, stats, services, topics, gossipStats] = yield* Effect.all([
        link.peers,
        messages.stats,
        rpc.services,
        gossip.topics,
        gossip.stats
      ])
      return new Control.Status({
        id: identity.id,
        pid: process.pid,
        control: control ?? null,
        transports: [{ kind: transport.kind, address: transport.address }],
        peers: peers.map((peer) => ({ id: peer.peer, address: peer.remote, initiator: peer.initiator })),
        uptimeMs: Date.now() - startedAtMs,
        messages: {
          sent: stats.envelopesSent,
          received: stats.envelopesReceived,
          malformed: stats.envelopesMalformed,
          dropped: stats.droppedFull + stats.duplicatesDropped + stats.unknownTag
        },
        services: services.map((service) => ({ name: service.name, methods: [...service.methods] })),
        gossip: { strategy: gossipStats.strategy, peers: gossipStats.peers, topics: [...topics] }
      })
    })

    if (control !== undefined) {
      yield* ensureDataDir(config.dataDir)
      yield* Control.serve({
        path: control,
        connectionsMax: limits.controlConnectionsMax,
        handlers: {
          status,
          connect: messages.connect,
          call: ({ method, payload, peer, service }) =>
            rpc.callEncoded(peer === undefined ? identity.id : (peer as NodeId), service, method, payload),
          publish: gossip.publish,
          subscribe: (topic) => Stream.unwrapScoped(gossip.subscribe(topic))
        }
      })
    }
    yield* Effect.annotateLogsScoped({ node: identity.id.slice(0, 10) })
    return Node.of({ id: identity.id, dataDir: config.dataDir, control, status, connect: messages.connect })
  })
