/**
 * The node-wide RPC router: accepts `@weft/rpc` channels and feeds each served RpcGroup's RpcServer
 * through its own `RpcServer.Protocol`. Requests are routed by rpc tag (unique per node); acks and
 * interrupts follow the request id to the server that holds it; pings are answered here.
 *
 * Each peer has a gate shared by all its channels: at most `inFlightMax` requests given to servers,
 * `queuedMax` more waiting; beyond that a request is refused at once with an Exit that dies with a
 * named defect (see `rpcWire.rejectedExit`), which the Weft client turns into an `RpcClientError`.
 * A request's slot is freed when its server sends the request's Exit, or when its channel ends.
 *
 * The bookkeeping is plain maps and counters mutated by the channel and server fibers; Effect's
 * fibers run on one thread and no mutation spans a suspension point.
 */
import type { RpcGroup } from "@effect/rpc"
import { RpcServer } from "@effect/rpc"
import type { FromClientEncoded, FromServerEncoded, RequestEncoded } from "@effect/rpc/RpcMessage"
import { constEof, constPong } from "@effect/rpc/RpcMessage"
import type { Scope } from "effect"
import { Effect, Mailbox, Option, Stream } from "effect"
import type { Channel } from "../Channel.js"
import type { NodeId } from "../NodeId.js"
import { NodeError } from "../WeftError.js"
import { decodeFromClient, rejectedExit, stampPeer } from "./rpcWire.js"

/** One served RpcGroup. */
interface Server {
  readonly name: string
  readonly methods: ReadonlyArray<string>
  readonly disconnects: Mailbox.Mailbox<number>
  /** clientId → the channel it stands for; one clientId per (channel, server) pair. */
  readonly conns: Map<number, Conn>
  write: (clientId: number, message: FromClientEncoded) => Effect.Effect<void>
  nextClientId: number
  live: boolean
}

/** One inbound channel. */
interface Conn {
  readonly channel: Channel
  readonly gate: Gate
  readonly clientIds: Map<Server, number>
  /** requestId → request, while queued or running. */
  readonly requests: Map<string, Pending>
  ended: boolean
}

interface Pending {
  readonly conn: Conn
  readonly server: Server
  readonly clientId: number
  readonly request: RequestEncoded
  state: "queued" | "running" | "done"
}

/** The admission state of one peer, across its channels. */
interface Gate {
  readonly peer: NodeId
  running: number
  readonly queue: Array<Pending>
  conns: number
}

/** What the router counts (every drop and refusal has one). */
export interface RouterStats {
  /** Well-formed requests received. */
  readonly requestsReceived: number
  /** Requests refused because the peer had `rpcRequestsQueuedPerPeerMax` already waiting. */
  readonly requestsRejected: number
  /** Requests for an rpc tag no group on this node serves. */
  readonly unknownRpc: number
  /** Bodies on RPC channels (either side) that were not well-formed RPC messages; dropped. */
  readonly malformed: number
  readonly channelsOpen: number
  readonly requestsRunning: number
  readonly requestsQueued: number
}

/** A served group as the directory lists it. */
export interface ServiceEntry {
  readonly name: string
  readonly methods: ReadonlyArray<string>
}

/** The bounds the router enforces. */
export interface RouterLimits {
  readonly inFlightMax: number
  readonly queuedMax: number
}

const quiet = <E>(effect: Effect.Effect<void, E>): Effect.Effect<void> => Effect.catchAllCause(effect, () => Effect.void)

/** Creates a router with no services. */
export const makeRouter = (limits: RouterLimits) => {
  const byTag = new Map<string, Server>()
  const byName = new Map<string, Server>()
  const gates = new Map<NodeId, Gate>()
  const counts = { requestsReceived: 0, requestsRejected: 0, unknownRpc: 0, malformed: 0, channelsOpen: 0 }

  // ---- admission -------------------------------------------------------------------------------

  const dispatch = (pending: Pending): Effect.Effect<void> =>
    Effect.catchAllCause(pending.server.write(pending.clientId, pending.request), () => finish(pending))

  const pump = (gate: Gate): Effect.Effect<void> =>
    Effect.suspend(() => {
      const admitted: Array<Pending> = []
      while (gate.running < limits.inFlightMax && gate.queue.length > 0) {
        const next = gate.queue.shift()!
        next.state = "running"
        gate.running++
        admitted.push(next)
      }
      return admitted.length === 0 ? Effect.void : Effect.forEach(admitted, dispatch, { discard: true })
    })

  /** Forgets a request; frees its slot (and admits the next) if it was running. */
  const finish = (pending: Pending): Effect.Effect<void> =>
    Effect.suspend(() => {
      const wasRunning = release(pending)
      return wasRunning ? pump(pending.conn.gate) : Effect.void
    })

  const release = (pending: Pending): boolean => {
    const { conn, state } = pending
    if (state === "done") return false
    pending.state = "done"
    if (conn.requests.get(pending.request.id) === pending) conn.requests.delete(pending.request.id)
    if (state === "queued") {
      const index = conn.gate.queue.indexOf(pending)
      if (index >= 0) conn.gate.queue.splice(index, 1)
      return false
    }
    conn.gate.running--
    return true
  }

  // ---- from clients ------------------------------------------------------------------------------

  const clientIdOf = (conn: Conn, server: Server): number => {
    const known = conn.clientIds.get(server)
    if (known !== undefined) return known
    const id = server.nextClientId++
    conn.clientIds.set(server, id)
    server.conns.set(id, conn)
    return id
  }

  const onRequest = (conn: Conn, request: RequestEncoded): Effect.Effect<void> => {
    if (conn.requests.has(request.id)) {
      counts.malformed++ // RpcClient never reuses an id while the first is open
      return Effect.void
    }
    counts.requestsReceived++
    const server = byTag.get(request.tag)
    if (server === undefined || !server.live) {
      counts.unknownRpc++
      return quiet(conn.channel.send(rejectedExit(request.id, "UnknownRpc", `no rpc ${JSON.stringify(request.tag.slice(0, 100))} on this node`)))
    }
    const pending: Pending = {
      conn,
      server,
      clientId: clientIdOf(conn, server),
      request: stampPeer(request, conn.channel.peer),
      state: "queued"
    }
    const gate = conn.gate
    if (gate.running < limits.inFlightMax) {
      conn.requests.set(request.id, pending)
      pending.state = "running"
      gate.running++
      return dispatch(pending)
    }
    if (gate.queue.length < limits.queuedMax) {
      conn.requests.set(request.id, pending)
      gate.queue.push(pending)
      return Effect.void
    }
    counts.requestsRejected++
    return quiet(conn.channel.send(rejectedExit(request.id, "Overloaded", "too many requests from this peer")))
  }

  const onInterrupt = (conn: Conn, message: FromClientEncoded & { readonly _tag: "Interrupt" }): Effect.Effect<void> => {
    const pending = conn.requests.get(message.requestId)
    if (pending === undefined) return Effect.void
    // A queued request never reached its server: drop it; the client no longer waits for it.
    if (pending.state === "queued") return Effect.sync(() => release(pending))
    return quiet(pending.server.write(pending.clientId, message))
  }

  const onAck = (conn: Conn, message: FromClientEncoded & { readonly _tag: "Ack" }): Effect.Effect<void> => {
    const pending = conn.requests.get(message.requestId)
    return pending?.state === "running" ? quiet(pending.server.write(pending.clientId, message)) : Effect.void
  }

  const onEof = (conn: Conn): Effect.Effect<void> => {
    // RpcServer interrupts any later write for a client that sent Eof, so the channel stops here.
    conn.ended = true
    return Effect.forEach(conn.clientIds, ([server, clientId]) => quiet(server.write(clientId, constEof)), { discard: true })
  }

  const route = (conn: Conn, body: unknown): Effect.Effect<void> => {
    if (conn.ended) return Effect.void
    const message = decodeFromClient(body)
    if (message === undefined) {
      counts.malformed++
      return Effect.void
    }
    switch (message._tag) {
      case "Request":
        return onRequest(conn, message)
      case "Ack":
        return onAck(conn, message)
      case "Interrupt":
        return onInterrupt(conn, message)
      case "Ping":
        return quiet(conn.channel.send(constPong))
      case "Eof":
        return onEof(conn)
    }
  }

  // ---- channels ----------------------------------------------------------------------------------

  const openConn = (channel: Channel): Conn => {
    let gate = gates.get(channel.peer)
    if (gate === undefined) {
      gate = { peer: channel.peer, running: 0, queue: [], conns: 0 }
      gates.set(channel.peer, gate)
    }
    gate.conns++
    counts.channelsOpen++
    return { channel, gate, clientIds: new Map(), requests: new Map(), ended: false }
  }

  const closeConn = (conn: Conn): Effect.Effect<void> =>
    Effect.suspend(() => {
      conn.ended = true
      counts.channelsOpen--
      for (const [server, clientId] of conn.clientIds) {
        server.conns.delete(clientId)
        if (server.live) server.disconnects.unsafeOffer(clientId)
      }
      conn.clientIds.clear()
      for (const pending of [...conn.requests.values()]) release(pending)
      const gate = conn.gate
      gate.conns--
      if (gate.conns === 0) gates.delete(gate.peer)
      return pump(gate)
    })

  /** Serves one `@weft/rpc` channel until it ends. */
  const onChannel = (channel: Channel): Effect.Effect<void> =>
    Effect.suspend(() => {
      const conn = openConn(channel)
      return channel.receive.pipe(
        Stream.runForEach((body) => route(conn, body)),
        Effect.catchAllCause(() => Effect.void),
        Effect.ensuring(closeConn(conn)),
        Effect.ensuring(channel.close)
      )
    })

  // ---- servers -----------------------------------------------------------------------------------

  const send = (server: Server, clientId: number, response: FromServerEncoded): Effect.Effect<void> =>
    Effect.suspend(() => {
      const conn = server.conns.get(clientId)
      if (conn === undefined) return Effect.void
      const sent = quiet(conn.channel.send(response))
      if (response._tag !== "Exit") return sent
      const pending = conn.requests.get(response.requestId)
      return pending === undefined || pending.server !== server ? sent : Effect.zipRight(finish(pending), sent)
    })

  const end = (server: Server, clientId: number): Effect.Effect<void> =>
    Effect.sync(() => {
      const conn = server.conns.get(clientId)
      server.conns.delete(clientId)
      if (conn !== undefined && conn.clientIds.get(server) === clientId) conn.clientIds.delete(server)
    })

  const checkFree = (group: RpcGroup.RpcGroup<any>, name: string): Effect.Effect<void, NodeError> => {
    if (byName.has(name)) {
      return Effect.fail(new NodeError({ reason: "DuplicateRpc", detail: `a service named ${name} is already served` }))
    }
    for (const tag of group.requests.keys()) {
      const holder = byTag.get(tag)
      if (holder !== undefined) {
        return Effect.fail(new NodeError({ reason: "DuplicateRpc", detail: `rpc ${tag} is already served by ${holder.name}` }))
      }
    }
    return Effect.void
  }

  const unregister = (server: Server): Effect.Effect<void> =>
    Effect.suspend(() => {
      server.live = false
      for (const method of server.methods) if (byTag.get(method) === server) byTag.delete(method)
      if (byName.get(server.name) === server) byName.delete(server.name)
      const touched = new Set<Gate>()
      for (const [clientId, conn] of server.conns) {
        conn.clientIds.delete(server)
        for (const pending of [...conn.requests.values()]) {
          if (pending.server === server && release(pending)) touched.add(conn.gate)
        }
        server.conns.delete(clientId)
      }
      return Effect.forEach(touched, pump, { discard: true })
    })

  /**
   * Adds a group under `name` for the life of the scope and returns the protocol its RpcServer runs
   * over. Fails with `NodeError("DuplicateRpc")` if the name or any rpc tag is already served.
   */
  const register = (group: RpcGroup.RpcGroup<any>, name: string): Effect.Effect<RpcServer.Protocol["Type"], NodeError, Scope.Scope> =>
    Effect.gen(function*() {
      yield* checkFree(group, name)
      const server: Server = {
        name,
        methods: [...group.requests.keys()],
        disconnects: yield* Mailbox.make<number>(),
        conns: new Map(),
        write: () => Effect.void,
        nextClientId: 0,
        live: true
      }
      for (const method of server.methods) byTag.set(method, server)
      byName.set(name, server)
      yield* Effect.addFinalizer(() => unregister(server))
      return yield* RpcServer.Protocol.make((write) =>
        Effect.sync(() => {
          server.write = write
          return {
            disconnects: server.disconnects,
            send: (clientId, response) => send(server, clientId, response),
            end: (clientId) => end(server, clientId),
            clientIds: Effect.sync(() => new Set(server.conns.keys())),
            initialMessage: Effect.succeed(Option.none()),
            supportsAck: true,
            supportsTransferables: false,
            supportsSpanPropagation: true
          }
        })
      )
    })

  const services = Effect.sync((): ReadonlyArray<ServiceEntry> =>
    [...byName.values()].map((server) => ({ name: server.name, methods: server.methods }))
  )

  const lookup = (name: string): ServiceEntry | undefined => byName.get(name)

  const stats = Effect.sync((): RouterStats => {
    let running = 0
    let queued = 0
    for (const gate of gates.values()) {
      running += gate.running
      queued += gate.queue.length
    }
    return { ...counts, requestsRunning: running, requestsQueued: queued }
  })

  return { register, onChannel, services, lookup, stats } as const
}
