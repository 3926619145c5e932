/**
 * Helpers for running `LinkSecure` over real UDP sockets in tests: nodes on 127.0.0.1 port 0, a
 * recording relay, raw sockets, polling waits, a forced GC. Everything is released with the scope.
 */
import { Identity, Limits, LinkSecure, Transport } from "@weft/core"
import type { Link } from "@weft/core"
import type { Scope } from "effect"
import { Effect, Stream } from "effect"
import * as Dgram from "node:dgram"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { TransportUdp } from "../src/index.js"

/** The network key every honest test node shares. */
export const psk = Uint8Array.from({ length: 32 }, (_, index) => index + 1)

/** Another network's key. */
export const wrongPsk = Uint8Array.from({ length: 32 }, (_, index) => 255 - index)

/** The default cell size, which every test node uses. */
export const cellBytes = Limits.defaults.cellBytes

/**
 * Every socket here shares one event loop, so a burst reaches the kernel before anyone reads it:
 * buffers sized for a busy node (the default holds about 90 cells).
 */
export const socketBufferBytes = 4 * 1024 * 1024

/** A secure link over a real UDP endpoint, with every session it announced. */
export interface UdpNode {
  readonly link: LinkSecure.Service
  readonly endpoint: TransportUdp.UdpEndpoint
  readonly address: string
  readonly identity: Identity.Identity
  readonly announced: Array<Link.Session>
}

/** What a test node may differ in. */
export interface NodeOptions {
  readonly identity: Identity.Identity
  readonly psk?: Uint8Array
  readonly limits?: Partial<Limits.Values>
}

/** Binds 127.0.0.1:0 and runs a real `LinkSecure` (X-Wing, ML-DSA-65) over it, in the current scope. */
export const startNode = (options: NodeOptions): Effect.Effect<UdpNode, never, Scope.Scope> =>
  Effect.gen(function*() {
    const limits: Limits.Values = { ...Limits.defaults, ...options.limits }
    const endpoint = yield* TransportUdp.make({ recvBufferBytes: socketBufferBytes, sendBufferBytes: socketBufferBytes }).pipe(
      Effect.provideService(Limits.Limits, limits),
      Effect.orDie
    )
    const link = yield* LinkSecure.make({ psk: options.psk ?? psk }).pipe(
      Effect.provideService(Transport.Transport, endpoint),
      Effect.provideService(Identity.NodeIdentity, options.identity),
      Effect.provideService(Limits.Limits, limits)
    )
    const announced: Array<Link.Session> = []
    yield* Stream.runForEach(link.sessions, (session) => Effect.sync(() => void announced.push(session))).pipe(Effect.forkScoped)
    return { link, endpoint, address: endpoint.address, identity: options.identity, announced }
  })

/** A deterministic identity (real ML-DSA-65 keys). */
export const identityOf = (n: number): Identity.Identity => Identity.generate(new Uint8Array(32).fill(n))

/** Reads a link's counters without a fiber (they are plain `Effect.sync` readouts). */
export const security = (node: UdpNode) => Effect.runSync(node.link.security)
/** See `security`. */
export const stats = (node: UdpNode) => Effect.runSync(node.link.stats)
/** See `security`. */
export const tables = (node: UdpNode) => Effect.runSync(node.link.tables)

/** Tables with nothing in them. */
export const emptyTables: LinkSecure.Tables = {
  sessions: 0, handshakes: 0, reassemblyAddresses: 0, reassemblyPartials: 0, handshakeReassemblyAddresses: 0, replayCacheEntries: 0
}

/** Polls `check` every few milliseconds of real time; false if it still fails after `timeoutMs`. */
export const waitUntil = (check: () => boolean, timeoutMs = 5_000): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!check()) {
      if (Date.now() > deadline) return false
      yield* Effect.sleep("5 millis")
    }
    return true
  })

/** Collects a session's inbound frames into an array, by a fiber of the current scope. */
export const collect = (session: Link.Session): Effect.Effect<Array<Uint8Array>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const frames: Array<Uint8Array> = []
    yield* Stream.runForEach(session.frames, (frame) => Effect.sync(() => void frames.push(frame))).pipe(Effect.forkScoped)
    return frames
  })

/** A byte pattern. */
export const bytes = (length: number, fill = 7): Uint8Array => Uint8Array.from({ length }, (_, index) => (index * 31 + fill) & 0xff)

// ---------------------------------------------------------------------------------------------------
// Raw sockets

/** A raw socket bound on 127.0.0.1:0 that records every datagram it receives; closed with the scope. */
export interface RawSocket {
  readonly socket: Dgram.Socket
  readonly address: string
  readonly received: Array<Buffer>
}

const closeQuietly = (socket: Dgram.Socket): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    try {
      socket.close(() => resume(Effect.void))
    } catch {
      resume(Effect.void)
    }
  })

const bindRaw = Effect.acquireRelease(
  Effect.async<Dgram.Socket>((resume) => {
    const socket = Dgram.createSocket("udp4")
    socket.on("error", () => {})
    socket.bind(0, "127.0.0.1", () => {
      socket.setRecvBufferSize(socketBufferBytes)
      socket.setSendBufferSize(socketBufferBytes)
      resume(Effect.succeed(socket))
    })
  }),
  closeQuietly
)

const addressOf = (socket: Dgram.Socket): string => {
  const local = socket.address()
  return TransportUdp.format({ host: local.address, port: local.port })
}

/** A raw socket, closed with the scope. */
export const rawSocket: Effect.Effect<RawSocket, never, Scope.Scope> = Effect.map(bindRaw, (socket) => {
  const received: Array<Buffer> = []
  socket.on("message", (message) => void received.push(message))
  return { socket, address: addressOf(socket), received }
})

const portOf = (address: string): number => {
  const peer = TransportUdp.parse(address)
  if (peer === undefined) throw new Error(`not a udp address: ${address}`)
  return peer.port
}

/** Sends each payload in order; completes when the kernel took them all. */
export const rawSend = (socket: Dgram.Socket, to: string, payloads: ReadonlyArray<Uint8Array>): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    let pending = payloads.length
    if (pending === 0) return resume(Effect.void)
    for (const payload of payloads) {
      socket.send(payload, portOf(to), "127.0.0.1", () => {
        if (--pending === 0) resume(Effect.void)
      })
    }
  })

// ---------------------------------------------------------------------------------------------------
// The relay

/** One datagram the relay forwarded. */
export interface Relayed {
  /** Toward the dialer (`a`) or toward the target (`b`). */
  readonly toward: "a" | "b"
  readonly cell: Buffer
}

/**
 * A man in the middle on two raw sockets: the dialer talks to `front`, the target sees it at `back`.
 * It forwards both ways and records every datagram; `injectToB`/`injectToA` send as if from the far side.
 */
export interface Relay {
  readonly front: string
  readonly back: string
  readonly records: Array<Relayed>
  readonly injectToB: (cells: ReadonlyArray<Uint8Array>) => Effect.Effect<void>
  readonly injectToA: (cells: ReadonlyArray<Uint8Array>) => Effect.Effect<void>
}

/** A relay toward `target`; the dialer's address is learned from its first datagram. */
export const makeRelay = (target: string): Effect.Effect<Relay, never, Scope.Scope> =>
  Effect.gen(function*() {
    const front = yield* bindRaw
    const back = yield* bindRaw
    const records: Array<Relayed> = []
    const targetPort = portOf(target)
    let dialerPort: number | undefined
    front.on("message", (message, remote) => {
      dialerPort = remote.port
      records.push({ toward: "b", cell: message })
      back.send(message, targetPort, "127.0.0.1")
    })
    back.on("message", (message, remote) => {
      if (remote.port !== targetPort || dialerPort === undefined) return
      records.push({ toward: "a", cell: message })
      front.send(message, dialerPort, "127.0.0.1")
    })
    return {
      front: addressOf(front),
      back: addressOf(back),
      records,
      injectToB: (cells) => rawSend(back, target, cells),
      injectToA: (cells) =>
        dialerPort === undefined ? Effect.void : rawSend(front, TransportUdp.format({ host: "127.0.0.1", port: dialerPort }), cells)
    }
  })

// ---------------------------------------------------------------------------------------------------
// Measuring

/** The smallest Shannon entropy (bits) and the largest top-value share over every byte position. */
export const bytePositionSpread = (cells: ReadonlyArray<Uint8Array>, length: number) => {
  const counts = new Uint32Array(256)
  let worstEntropy = 8
  let worstShare = 0
  for (let at = 0; at < length; at++) {
    counts.fill(0)
    for (const cell of cells) counts[cell[at]!]!++
    let entropy = 0
    let most = 0
    for (const count of counts) {
      if (count === 0) continue
      const p = count / cells.length
      entropy -= p * Math.log2(p)
      most = Math.max(most, count)
    }
    worstEntropy = Math.min(worstEntropy, entropy)
    worstShare = Math.max(worstShare, most / cells.length)
  }
  return { worstEntropy, worstShare }
}

/**
 * A full garbage collection: `global.gc` when node runs with `--expose-gc`, else the same function
 * obtained at run time (V8 flag set, then read from a fresh context), since vitest workers lack the flag.
 */
export const forceGc: () => void = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (typeof exposed === "function") return exposed
  v8.setFlagsFromString("--expose-gc")
  return vm.runInNewContext("gc") as () => void
})()
