/**
 * The UDP transport: one `node:dgram` datagram is one cell. Addresses are `udp:<ip>:<port>`, with
 * IPv6 hosts in brackets (`udp:127.0.0.1:7100`, `udp:[::1]:7100`); hosts are IP literals only, so
 * neither bind nor send ever waits on DNS.
 *
 * The cell path is plain callbacks: inbound datagrams are gathered from the socket's `message` callbacks
 * (libuv reads several per poll) and handed to a bounded dropping `Mailbox` once per event-loop turn, so
 * the link above wakes once per batch, not per cell; `unsafeSend` is one `socket.send` with no Effect and
 * no closure per cell (the link's path), `send` waits for the kernel's answer.
 * UDP is unreliable, unordered and connectionless: a send succeeds once the kernel took the datagram,
 * and an unreachable peer is silent (its errors are counted, never fatal to the endpoint).
 */
import { Limits, Transport, WeftError } from "@weft/core"
import type { Scope } from "effect"
import { Effect, Layer, Mailbox } from "effect"
import * as Dgram from "node:dgram"
import * as Net from "node:net"

type Address = Transport.Address
type Datagram = Transport.Datagram
type Endpoint = Transport.Endpoint
type Stats = Transport.Stats
const { TransportError } = WeftError
type TransportError = WeftError.TransportError

/** The address kind of this transport. */
export const kind = "udp"

const prefix = `${kind}:`

/**
 * Longest address text `parse` looks at: `udp:[` + 45 characters of IPv6 + a zone id of at most
 * 16 (IFNAMSIZ) + `]:65535`, rounded up. A property of the format, not a tunable bound.
 */
export const addressCharsMax = 80

/** Largest UDP payload per IP version (65535 less the IPv4+UDP or UDP headers). */
const payloadBytesMax = { 4: 65_507, 6: 65_527 } as const

/** The options of `make` and `layer`. */
export interface Options {
  /** IP literal to bind (default `127.0.0.1`; `::1` or `::` for IPv6, `0.0.0.0` for every interface). */
  readonly host?: string | undefined
  /** Port to bind (default 0: an ephemeral port chosen by the kernel). */
  readonly port?: number | undefined
  /** Kernel receive buffer size (SO_RCVBUF); default: the kernel's. */
  readonly recvBufferBytes?: number | undefined
  /** Kernel send buffer size (SO_SNDBUF); default: the kernel's. */
  readonly sendBufferBytes?: number | undefined
}

/** A parsed UDP address. */
export interface Peer {
  /** An IP literal (IPv6 without brackets, possibly with a `%zone`). */
  readonly host: string
  /** 1–65535. */
  readonly port: number
  readonly family: 4 | 6
}

/** The counters of a UDP endpoint: the `Transport` ones and two of its own. */
export interface UdpStats extends Stats {
  /** Sends the kernel refused (peer or network unreachable, no buffer space, …): counted, never fatal. */
  readonly sendErrors: number
  /** `error` events on the socket after it was bound: counted, never fatal. */
  readonly socketErrors: number
  /** Cells `unsafeSend` dropped because the socket already queued `endpointSendQueueCells`. */
  readonly cellsDroppedSendQueueFull: number
}

/** A bound UDP endpoint: a `Transport` endpoint whose `stats` carry the UDP counters. */
export interface UdpEndpoint extends Endpoint {
  readonly stats: Effect.Effect<UdpStats>
}

// ---------------------------------------------------------------------------------------------------
// Addresses

// no leading zeros, so that every address has exactly one text and addresses compare as strings
const portPattern = /^[1-9][0-9]{0,4}$/

/**
 * Parses `udp:<ipv4>:<port>` or `udp:[<ipv6>]:<port>`; undefined for anything else (another kind,
 * a host name, a missing or out-of-range port, port 0, leading zeros, text over `addressCharsMax`).
 * IPv6 text is taken as written, not normalized.
 */
export const parse = (address: Address): Peer | undefined => {
  if (address.length > addressCharsMax || !address.startsWith(prefix)) return undefined
  const portColon = address.lastIndexOf(":")
  const portText = address.slice(portColon + 1)
  if (!portPattern.test(portText)) return undefined
  const port = Number(portText)
  if (port > 65_535) return undefined
  const hostText = address.slice(prefix.length, portColon)
  if (hostText.startsWith("[") && hostText.endsWith("]")) {
    const host = hostText.slice(1, -1)
    return Net.isIPv6(host) ? { host, port, family: 6 } : undefined
  }
  return Net.isIPv4(hostText) ? { host: hostText, port, family: 4 } : undefined
}

/** Formats a host (IP literal) and port as an address; IPv6 hosts get brackets. */
export const format = (peer: { readonly host: string; readonly port: number }): Address =>
  peer.host.includes(":") ? `${prefix}[${peer.host}]:${peer.port}` : `${prefix}${peer.host}:${peer.port}`

/**
 * A `parse` with a small FIFO cache of good addresses, because `send` is the hot path and a node
 * sends to few addresses. Bad addresses are not cached, so hostile ones cannot evict good ones.
 */
const makeResolver = (entriesMax: number) => {
  const cache = new Map<Address, Peer>()
  return (address: Address): Peer | undefined => {
    const hit = cache.get(address)
    if (hit !== undefined) return hit
    const peer = parse(address)
    if (peer === undefined) return undefined
    if (cache.size >= entriesMax) cache.delete(cache.keys().next().value!)
    cache.set(address, peer)
    return peer
  }
}

// ---------------------------------------------------------------------------------------------------
// The socket

interface Config {
  readonly host: string
  readonly port: number
  readonly family: 4 | 6
  readonly recvBufferBytes: number | undefined
  readonly sendBufferBytes: number | undefined
}

interface State {
  readonly socket: Dgram.Socket
  readonly inbox: Mailbox.Mailbox<Datagram>
  /** Cells read in this event-loop turn, handed to `inbox` together at its end. */
  batch: Array<Datagram>
  flushScheduled: boolean
  /** Set first thing on release: sends fail with "Closed" from then on. */
  closed: boolean
  socketClosed: boolean
  cellsSent: number
  cellsReceived: number
  cellsDroppedInboxFull: number
  cellsDroppedWrongSize: number
  sendErrors: number
  socketErrors: number
  cellsDroppedSendQueueFull: number
}

const bindError = (detail: string) => new TransportError({ reason: "Bind", detail })

const isBufferBytes = (value: number | undefined): boolean =>
  value === undefined || (Number.isSafeInteger(value) && value > 0 && value <= 2 ** 31 - 1)

/** Checks the options before any socket exists, so a bad one is a typed error rather than a throw. */
const configOf = (options: Options, cellBytes: number): Effect.Effect<Config, TransportError> => {
  const host = options.host ?? "127.0.0.1"
  const port = options.port ?? 0
  const family = Net.isIP(host)
  if (family !== 4 && family !== 6) return Effect.fail(bindError(`udp host must be an IP literal, got "${host}"`))
  if (!(Number.isInteger(port) && port >= 0 && port <= 65_535)) {
    return Effect.fail(bindError(`udp port must be an integer in 0..65535, got ${port}`))
  }
  if (!isBufferBytes(options.recvBufferBytes) || !isBufferBytes(options.sendBufferBytes)) {
    return Effect.fail(bindError("udp recvBufferBytes and sendBufferBytes must be positive integers"))
  }
  if (cellBytes > payloadBytesMax[family]) {
    return Effect.fail(bindError(`cellBytes ${cellBytes} exceeds the largest IPv${family} UDP payload`))
  }
  return Effect.succeed({
    host,
    port,
    family,
    recvBufferBytes: options.recvBufferBytes,
    sendBufferBytes: options.sendBufferBytes
  })
}

/**
 * Every host `dgram` is handed is an IP literal checked by `configOf` or `parse` (and of the socket's
 * family), so the "lookup" answers at once: no `dns.lookup` and no `nextTick` per send.
 */
const literalLookup = (
  address: string,
  family: unknown,
  callback: (error: NodeJS.ErrnoException | null, address: string, family: number) => void
): void => callback(null, address, typeof family === "number" ? family : Net.isIP(address))

const openSocket = (config: Config): Dgram.Socket =>
  Dgram.createSocket({
    type: config.family === 6 ? "udp6" : "udp4",
    lookup: literalLookup as unknown as Dgram.SocketOptions["lookup"]
  })

/** Closes the socket once; the port is free again when this completes. */
const closeSocket = (state: State): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (state.socketClosed) return resume(Effect.void)
    state.socketClosed = true
    try {
      state.socket.close(() => resume(Effect.void))
    } catch {
      resume(Effect.void) // already closed underneath us: nothing left to release
    }
  })

const bind = (socket: Dgram.Socket, config: Config): Effect.Effect<void, TransportError> =>
  Effect.async<void, TransportError>((resume) => {
    const where = format({ host: config.host, port: config.port })
    const onError = (error: Error) => {
      socket.off("listening", onListening)
      resume(Effect.fail(bindError(`cannot bind ${where}: ${error.message}`)))
    }
    const onListening = () => {
      socket.off("error", onError)
      resume(Effect.void)
    }
    socket.once("error", onError)
    socket.once("listening", onListening)
    try {
      socket.bind({ port: config.port, address: config.host, exclusive: true })
    } catch (error) {
      onError(error instanceof Error ? error : new Error(String(error)))
    }
    return Effect.sync(() => {
      socket.off("error", onError)
      socket.off("listening", onListening)
    })
  })

/** Sets the kernel buffer sizes asked for; the kernel may clamp them (Linux: to rmem_max/wmem_max). */
const setBufferSizes = (socket: Dgram.Socket, config: Config): Effect.Effect<void, TransportError> =>
  Effect.try({
    try: () => {
      if (config.recvBufferBytes !== undefined) socket.setRecvBufferSize(config.recvBufferBytes)
      if (config.sendBufferBytes !== undefined) socket.setSendBufferSize(config.sendBufferBytes)
    },
    catch: (error) => bindError(`cannot set udp buffer sizes: ${error instanceof Error ? error.message : error}`)
  })

// ---------------------------------------------------------------------------------------------------
// The cell path

/** Hands the turn's cells to the inbox in one offer (one wake-up of the reader); what does not fit is counted. */
const flush = (state: State): void => {
  state.flushScheduled = false
  const batch = state.batch
  if (batch.length === 0 || state.closed) return
  state.batch = []
  const rejected = state.inbox.unsafeOfferAll(batch).length
  state.cellsReceived += batch.length - rejected
  state.cellsDroppedInboxFull += rejected
}

/**
 * The `message` callback: exact-size datagrams join the turn's batch (no copy, no Effect), others are
 * counted. The batch never outgrows the inbox: cells past its capacity would be dropped at the flush anyway.
 */
const makeOnMessage = (state: State, cellBytes: number, family: 4 | 6, batchCellsMax: number) =>
(message: Buffer, remote: Dgram.RemoteInfo): void => {
  if (message.length !== cellBytes) {
    state.cellsDroppedWrongSize++
    return
  }
  if (state.batch.length >= batchCellsMax) {
    state.cellsDroppedInboxFull++
    return
  }
  const from = family === 6 ? `${prefix}[${remote.address}]:${remote.port}` : `${prefix}${remote.address}:${remote.port}`
  state.batch.push({ from, cell: message })
  if (!state.flushScheduled) {
    state.flushScheduled = true
    // After the poll phase: every datagram libuv read in this turn is in the batch by then.
    setImmediate(flush, state)
  }
}

// Errors that mean "this datagram is lost", which UDP reports to nobody: count them, succeed.
const lossCodes = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN", "ENOBUFS", "EAGAIN"])

// a hostile address may be huge: error details quote at most this much of it
const shown = (to: Address): string => (to.length > addressCharsMax ? `${to.slice(0, addressCharsMax)}…` : to)

const sendFailed = (state: State, to: Address, error: NodeJS.ErrnoException): Effect.Effect<void, TransportError> => {
  if (state.closed) return Effect.fail(new TransportError({ reason: "Closed", detail: `send to ${shown(to)}` }))
  state.sendErrors++
  if (error.code !== undefined && lossCodes.has(error.code)) return Effect.void
  return Effect.fail(new TransportError({ reason: "Send", detail: `send to ${shown(to)}: ${error.message}` }))
}

/** The peer to send `cell` to, or why not. */
const checkSend = (
  state: State,
  cellBytes: number,
  family: 4 | 6,
  to: Address,
  cell: Uint8Array,
  peer: Peer | undefined
): Peer | TransportError => {
  if (state.closed) return new TransportError({ reason: "Closed", detail: `send to ${shown(to)}` })
  if (cell.length !== cellBytes) {
    return new TransportError({ reason: "CellSize", detail: `cell of ${cell.length} bytes, expected ${cellBytes}` })
  }
  if (peer === undefined) return new TransportError({ reason: "BadAddress", detail: `not a udp address: ${shown(to)}` })
  if (peer.family !== family) {
    return new TransportError({ reason: "BadAddress", detail: `${to} is IPv${peer.family}; this endpoint is IPv${family}` })
  }
  return peer
}

/**
 * `send`: one `socket.send` per cell, complete when the kernel took it. The cell is not copied here
 * (the kernel copies it), so the caller may reuse it once the send completes, not before.
 */
const makeSend = (state: State, cellBytes: number, family: 4 | 6, resolve: (address: Address) => Peer | undefined) =>
(to: Address, cell: Uint8Array): Effect.Effect<void, TransportError> =>
  Effect.async<void, TransportError>((resume) => {
    const peer = checkSend(state, cellBytes, family, to, cell, resolve(to))
    if (peer instanceof TransportError) return resume(Effect.fail(peer))
    try {
      state.socket.send(cell, peer.port, peer.host, (error) => {
        if (error === null || error === undefined) {
          state.cellsSent++
          resume(Effect.void)
        } else {
          resume(sendFailed(state, to, error))
        }
      })
    } catch (error) {
      resume(sendFailed(state, to, error instanceof Error ? error : new Error(String(error))))
    }
  })

/**
 * `unsafeSend`: one `socket.send` with a shared callback. On loopback and with room in the kernel's
 * buffer the datagram is copied by the kernel during the call; otherwise libuv queues it (holding `cell`),
 * and past `endpointSendQueueCells` queued cells new ones are dropped like any lost datagram.
 */
const makeUnsafeSend = (
  state: State,
  cellBytes: number,
  family: 4 | 6,
  resolve: (address: Address) => Peer | undefined,
  sendQueueCellsMax: number
) => {
  const onSent = (error: Error | null): void => {
    if (error !== null && error !== undefined) state.sendErrors++
  }
  return (to: Address, cell: Uint8Array): TransportError | undefined => {
    const peer = checkSend(state, cellBytes, family, to, cell, resolve(to))
    if (peer instanceof TransportError) return peer
    if (state.socket.getSendQueueCount() >= sendQueueCellsMax) {
      state.cellsDroppedSendQueueFull++
      return undefined
    }
    try {
      state.socket.send(cell, peer.port, peer.host, onSent)
      state.cellsSent++
    } catch {
      state.sendErrors++
    }
    return undefined
  }
}

const statsOf = (state: State): Effect.Effect<UdpStats> =>
  Effect.sync(() => ({
    cellsSent: state.cellsSent,
    cellsReceived: state.cellsReceived,
    cellsDroppedInboxFull: state.cellsDroppedInboxFull,
    cellsDroppedWrongSize: state.cellsDroppedWrongSize,
    sendErrors: state.sendErrors,
    socketErrors: state.socketErrors,
    cellsDroppedSendQueueFull: state.cellsDroppedSendQueueFull
  }))

// ---------------------------------------------------------------------------------------------------
// The endpoint

/** Opens the socket with its listeners; closing the scope closes it and ends the inbox. */
const acquire = (config: Config, limits: Limits.Values, inbox: Mailbox.Mailbox<Datagram>) =>
  Effect.acquireRelease(
    Effect.sync((): State => {
      const state: State = {
        socket: openSocket(config),
        inbox,
        batch: [],
        flushScheduled: false,
        closed: false,
        socketClosed: false,
        cellsSent: 0,
        cellsReceived: 0,
        cellsDroppedInboxFull: 0,
        cellsDroppedWrongSize: 0,
        sendErrors: 0,
        socketErrors: 0,
        cellsDroppedSendQueueFull: 0
      }
      // always listening for errors, so a late one is counted rather than thrown out of the process
      state.socket.on("error", () => state.socketErrors++)
      state.socket.on("message", makeOnMessage(state, limits.cellBytes, config.family, limits.endpointInboxCells))
      return state
    }),
    (state) =>
      Effect.suspend(() => {
        state.closed = true
        return Effect.zipRight(closeSocket(state), inbox.shutdown)
      })
  )

/**
 * Binds a UDP endpoint. Fails with `TransportError("Bind")` for a bad option, a host that is not
 * a local IP literal, or a port in use. Closing the scope closes the socket (the port is free at once)
 * and ends `receive`; an interrupted bind closes the socket too.
 */
export const make = (options: Options = {}): Effect.Effect<UdpEndpoint, TransportError, Scope.Scope | Limits.Limits> =>
  Effect.gen(function*() {
    const limits = yield* Limits.Limits
    const config = yield* configOf(options, limits.cellBytes)
    const inbox = yield* Mailbox.make<Datagram>({ capacity: limits.endpointInboxCells, strategy: "dropping" })
    const state = yield* acquire(config, limits, inbox)
    const closeNow = Effect.suspend(() => {
      state.closed = true
      return closeSocket(state)
    })
    yield* bind(state.socket, config).pipe(Effect.zipRight(setBufferSizes(state.socket, config)), Effect.onError(() => closeNow))
    const local = state.socket.address()
    // the addresses a node sends to most are its peers' and its handshakes' ones
    const resolve = makeResolver(limits.peersMax + limits.handshakesInFlightMax)
    return {
      kind,
      address: format({ host: local.address, port: local.port }),
      capabilities: { reliable: false, ordered: false, cellBytes: limits.cellBytes },
      send: makeSend(state, limits.cellBytes, config.family, resolve),
      unsafeSend: makeUnsafeSend(state, limits.cellBytes, config.family, resolve, limits.endpointSendQueueCells),
      receive: Mailbox.toStream(inbox),
      stats: statsOf(state)
    } satisfies UdpEndpoint
  })

/** The `Transport` service as one UDP endpoint, closed with the layer. */
export const layer = (options: Options = {}): Layer.Layer<Transport.Transport, TransportError, Limits.Limits> =>
  Layer.scoped(Transport.Transport, make(options))
