/**
 * js-libp2p's side: libp2p 3.3.11 over TCP + Noise + Yamux on 127.0.0.1 (the method of shared notes
 * perf-baselines §3). `/bench/sink/1` counts bytes; `/bench/echo/1` echoes every message and closes its
 * end when the remote closes its own.
 *
 * Backpressure: `send()` returning false is followed by waiting for the next `'drain'` event, not
 * `onDrain()`, whose promise is never reset in @libp2p/utils 7.4.1 (resolved once per stream), so a
 * loop on it would buffer without bound.
 */
import "../withResolvers.js"
import { noise } from "@chainsafe/libp2p-noise"
import { yamux } from "@chainsafe/libp2p-yamux"
import type { Connection, Stream } from "@libp2p/interface"
import { tcp } from "@libp2p/tcp"
import { multiaddr } from "@multiformats/multiaddr"
import { createLibp2p, type Libp2p } from "libp2p"
import { randomBytes } from "node:crypto"
import type { Role, RoleContext } from "../child.js"
import { byteWaiter, requestBytes } from "./measure.js"

const sinkProtocol = "/bench/sink/1"
const echoProtocol = "/bench/echo/1"
const bulkChunkBytes = 64 * 1024
// Sequential requests never hold many streams, but closing ends overlap the next open: no spurious resets.
const streamsMax = { maxInboundStreams: 1024, maxOutboundStreams: 1024 }

const node = (listen: boolean): Promise<Libp2p> =>
  createLibp2p({
    addresses: { listen: listen ? ["/ip4/127.0.0.1/tcp/0"] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // The default (5 inbound connections per second per host) is a flood guard: the handshake test
    // dials faster than that, and a refused dial would measure the guard, not the handshake.
    connectionManager: { inboundConnectionThreshold: 1000 }
  })

const echo = (stream: Stream): void => {
  stream.addEventListener("message", (event) => void stream.send(event.data))
  stream.addEventListener("remoteCloseWrite", () => void stream.close().catch(() => {}))
}

// ---------------------------------------------------------------------------------------------------
// Server

/** Listens; counts sink bytes, echoes echo streams. */
export const server = async (_: RoleContext): Promise<Role> => {
  const libp2p = await node(true)
  let bytes = 0
  await libp2p.handle(sinkProtocol, (stream) => {
    stream.addEventListener("message", (event) => {
      bytes += event.data.byteLength
    })
    stream.addEventListener("remoteCloseWrite", () => void stream.close().catch(() => {}))
  }, streamsMax)
  await libp2p.handle(echoProtocol, echo, streamsMax)
  return {
    info: { address: libp2p.getMultiaddrs()[0]!.toString() },
    ops: { count: async () => ({ bytes, atMs: performance.now() }) },
    close: async () => {
      await libp2p.stop()
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Client

const drained = (stream: Stream): Promise<void> =>
  new Promise((resolve) => stream.addEventListener("drain", () => resolve(), { once: true }))

const bulk = async (connection: Connection, seconds: number) => {
  const stream = await connection.newStream(sinkProtocol, streamsMax)
  const chunk = new Uint8Array(randomBytes(bulkChunkBytes))
  const start = performance.now()
  let chunks = 0
  while (performance.now() - start < seconds * 1000) {
    chunks++
    if (!stream.send(chunk)) await drained(stream)
  }
  await stream.close()
  return chunks
}

/** 32-byte round trips on one stream opened for the measurement. */
const roundTrips = async (connection: Connection, seconds: number) => {
  const stream = await connection.newStream(echoProtocol, streamsMax)
  const replies = byteWaiter()
  stream.addEventListener("message", (event) => replies.feed(event.data.byteLength))
  const request = new Uint8Array(requestBytes)
  const start = performance.now()
  const end = start + seconds * 1000
  let trips = 0
  while (performance.now() < end) {
    stream.send(request)
    await replies.take(requestBytes)
    trips++
  }
  const rate = trips / ((performance.now() - start) / 1000)
  await stream.close()
  return rate
}

/** Each request: open a stream (multistream-select), send 32 B, read the echo, close. */
const newStreams = async (connection: Connection, seconds: number) => {
  const request = new Uint8Array(requestBytes)
  const start = performance.now()
  const end = start + seconds * 1000
  let requests = 0
  while (performance.now() < end) {
    const stream = await connection.newStream(echoProtocol, streamsMax)
    const replies = byteWaiter()
    stream.addEventListener("message", (event) => replies.feed(event.data.byteLength))
    stream.send(request)
    await replies.take(requestBytes)
    await stream.close()
    requests++
  }
  return requests / ((performance.now() - start) / 1000)
}

/** Dial + Noise + Yamux from a fresh (started, not timed) node each time. */
const handshakes = async (address: string, count: number) => {
  const target = multiaddr(address)
  const times: Array<number> = []
  for (let i = 0; i < count; i++) {
    const fresh = await node(false)
    const start = performance.now()
    const connection = await fresh.dial(target)
    times.push(performance.now() - start)
    await connection.close()
    await fresh.stop()
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return times
}

/** Dials the server once; the connection carries every test but the handshakes. */
export const client = async (context: RoleContext): Promise<Role> => {
  const address = String(context.init.address)
  const libp2p = await node(false)
  const connection = await libp2p.dial(multiaddr(address))
  return {
    info: {},
    ops: {
      bulk: (seconds) => bulk(connection, Number(seconds)),
      rr: (seconds) => roundTrips(connection, Number(seconds)),
      newStream: (seconds) => newStreams(connection, Number(seconds)),
      handshakes: (count) => handshakes(address, Number(count))
    },
    close: async () => {
      await libp2p.stop()
    }
  }
}
