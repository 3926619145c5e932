/**
 * node-datachannel's side: node-datachannel 0.33.4 (libdatachannel 0.24.5: ICE + DTLS + SCTP over UDP)
 * on 127.0.0.1, the method of shared notes perf-baselines §4. SDP and candidates go through the
 * orchestrator's relay; no ICE servers, host candidates on 127.0.0.1 only. Two reliable ordered
 * channels (the default): `bulk` (counted by the server) and `echo` (echoed).
 *
 * Bulk backpressure: send while `bufferedAmount() < 4 MiB`, resume on `onBufferedAmountLow` at 1 MiB.
 */
import nodeDataChannel from "node-datachannel"
import type { DataChannel, DescriptionType, PeerConnection } from "node-datachannel"
import { randomBytes } from "node:crypto"
import type { Role, RoleContext } from "../child.js"
import { byteWaiter, requestBytes } from "./measure.js"

const bulkMessageBytes = 16 * 1024
const bufferedHighBytes = 4 << 20
const bufferedLowBytes = 1 << 20
const openTimeoutMs = 15_000

type Signal =
  | { readonly type: "description"; readonly sdp: string; readonly kind: DescriptionType }
  | { readonly type: "candidate"; readonly candidate: string; readonly mid: string }

const peerConnection = (name: string, context: RoleContext): PeerConnection => {
  const pc = new nodeDataChannel.PeerConnection(name, { iceServers: [], bindAddress: "127.0.0.1" })
  pc.onLocalDescription((sdp, kind) => context.relay({ type: "description", sdp, kind } satisfies Signal))
  pc.onLocalCandidate((candidate, mid) => {
    if (candidate.includes("127.0.0.1")) context.relay({ type: "candidate", candidate, mid } satisfies Signal)
  })
  context.onRelay((data) => {
    const signal = data as Signal
    if (signal.type === "description") pc.setRemoteDescription(signal.sdp, signal.kind)
    else pc.addRemoteCandidate(signal.candidate, signal.mid)
  })
  return pc
}

const size = (message: string | Buffer | ArrayBuffer): number =>
  typeof message === "string" ? Buffer.byteLength(message) : message.byteLength

/** Answers the client's offer; counts `bulk`, echoes `echo`. */
export const server = async (context: RoleContext): Promise<Role> => {
  const pc = peerConnection("server", context)
  let bytes = 0
  pc.onDataChannel((channel) => {
    if (channel.getLabel() === "bulk") {
      channel.onMessage((message) => {
        bytes += size(message)
      })
    } else {
      channel.onMessage((message) => void channel.sendMessageBinary(message as Buffer))
    }
  })
  return {
    info: {},
    ops: { count: async () => ({ bytes, atMs: performance.now() }) },
    close: async () => {
      pc.close()
      nodeDataChannel.cleanup()
    }
  }
}

const opened = (channel: DataChannel): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`channel ${channel.getLabel()} did not open in ${openTimeoutMs} ms`)), openTimeoutMs)
    channel.onOpen(() => {
      clearTimeout(timer)
      resolve()
    })
  })

const bulk = (channel: DataChannel, seconds: number) =>
  new Promise<number>((resolve) => {
    const message = randomBytes(bulkMessageBytes)
    const end = performance.now() + seconds * 1000
    let messages = 0
    let done = false
    const pump = () => {
      if (done) return
      while (channel.bufferedAmount() < bufferedHighBytes) {
        if (performance.now() >= end) {
          done = true
          return resolve(messages)
        }
        channel.sendMessageBinary(message)
        messages++
      }
    }
    channel.setBufferedAmountLowThreshold(bufferedLowBytes)
    channel.onBufferedAmountLow(pump)
    pump()
  })

const roundTrips = async (channel: DataChannel, seconds: number) => {
  const replies = byteWaiter()
  channel.onMessage((message) => replies.feed(size(message)))
  const request = Buffer.alloc(requestBytes)
  const start = performance.now()
  const end = start + seconds * 1000
  let trips = 0
  while (performance.now() < end) {
    channel.sendMessageBinary(request)
    await replies.take(requestBytes)
    trips++
  }
  return trips / ((performance.now() - start) / 1000)
}

/** Offers two channels and waits until both are open. */
export const client = async (context: RoleContext): Promise<Role> => {
  const pc = peerConnection("client", context)
  const started = performance.now()
  const bulkChannel = pc.createDataChannel("bulk")
  const echoChannel = pc.createDataChannel("echo")
  await Promise.all([opened(bulkChannel), opened(echoChannel)])
  const pair = pc.getSelectedCandidatePair()
  return {
    info: {
      connectMs: performance.now() - started,
      pair: pair === null ? "none" : `${pair.local.address}:${pair.local.port}/${pair.local.transportType} <-> ${pair.remote.address}:${pair.remote.port}`
    },
    ops: {
      bulk: (seconds) => bulk(bulkChannel, Number(seconds)),
      rr: (seconds) => roundTrips(echoChannel, Number(seconds))
    },
    close: async () => {
      pc.close()
      nodeDataChannel.cleanup()
    }
  }
}
