/**
 * The RPC messages as they travel in channel bodies, checked at the edge: a body from the network is
 * untrusted, and `RpcServer`/`RpcClient` assume well-formed encoded messages (a bad request id makes
 * `BigInt` throw inside their loops), so every body passes through one of these decoders first.
 */
import type {
  FromClientEncoded,
  FromServerEncoded,
  RequestEncoded,
  ResponseExitEncoded
} from "@effect/rpc/RpcMessage"
import { constEof, constPing, constPong } from "@effect/rpc/RpcMessage"
import type { NodeId } from "../NodeId.js"

/** The message tag of RPC channels. */
export const channelTag = "@weft/rpc"

/** The header carrying the authenticated caller; the router overwrites whatever the client sent. */
export const peerHeader = "x-weft-peer"

/** The `name` of the defect the router answers with when it refuses a request. */
export const rejectedName = "WeftRpcRejected"

/** Why the router refused a request without running it. */
export type RejectReason = "Overloaded" | "UnknownRpc"

// RpcClient request ids are non-negative bigint counters; 20 digits hold any 64-bit value.
const requestIdPattern = /^\d{1,20}$/

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const isRequestId = (u: unknown): u is string => typeof u === "string" && requestIdPattern.test(u)

const isHeader = (u: unknown): u is [string, string] =>
  Array.isArray(u) && u.length === 2 && typeof u[0] === "string" && typeof u[1] === "string"

/** A body a client sent, as a well-formed client message, or `undefined`. */
export const decodeFromClient = (body: unknown): FromClientEncoded | undefined => {
  if (!isRecord(body)) return undefined
  switch (body._tag) {
    case "Request":
      return decodeRequest(body)
    case "Ack":
      return isRequestId(body.requestId) ? { _tag: "Ack", requestId: body.requestId } : undefined
    case "Interrupt":
      return isRequestId(body.requestId) ? { _tag: "Interrupt", requestId: body.requestId } : undefined
    case "Ping":
      return constPing
    case "Eof":
      return constEof
    default:
      return undefined
  }
}

const decodeRequest = (body: Record<string, unknown>): RequestEncoded | undefined => {
  const { headers, id, tag } = body
  if (!isRequestId(id) || typeof tag !== "string" || !Array.isArray(headers) || !headers.every(isHeader)) {
    return undefined
  }
  const request: RequestEncoded = { _tag: "Request", id, tag, payload: body.payload, headers }
  // RpcServer trusts traceId whenever spanId is present, so span fields pass only as a complete set.
  return typeof body.traceId === "string" && typeof body.spanId === "string" && typeof body.sampled === "boolean"
    ? { ...request, traceId: body.traceId, spanId: body.spanId, sampled: body.sampled }
    : request
}

/** The request with its caller header set to the channel's authenticated peer (any sent value dropped). */
export const stampPeer = (request: RequestEncoded, peer: NodeId): RequestEncoded => ({
  ...request,
  headers: [...request.headers.filter(([key]) => key.toLowerCase() !== peerHeader), [peerHeader, peer]]
})

/** A body a server sent, as a well-formed server message, or `undefined`. */
export const decodeFromServer = (body: unknown): FromServerEncoded | undefined => {
  if (!isRecord(body)) return undefined
  switch (body._tag) {
    case "Chunk":
      return isRequestId(body.requestId) && Array.isArray(body.values) && body.values.length > 0
        ? { _tag: "Chunk", requestId: body.requestId, values: body.values as [unknown, ...Array<unknown>] }
        : undefined
    case "Exit":
      return isRequestId(body.requestId) && isRecord(body.exit)
        ? { _tag: "Exit", requestId: body.requestId, exit: body.exit as ResponseExitEncoded["exit"] }
        : undefined
    case "Defect":
      return { _tag: "Defect", defect: body.defect }
    case "Pong":
      return constPong
    default:
      // "ClientProtocolError" is local only: from the wire it would forge a typed client error.
      return undefined
  }
}

/**
 * The answer to a request the router refused: an Exit that dies with a named defect, the same shape
 * RpcServer uses for a payload that fails its schema, so it fits every rpc's exit schema.
 */
export const rejectedExit = (requestId: string, reason: RejectReason, detail: string): ResponseExitEncoded => ({
  _tag: "Exit",
  requestId,
  exit: { _tag: "Failure", cause: { _tag: "Die", defect: { name: rejectedName, message: `${reason}: ${detail}` } } }
})

/** The reason of a refusal, if this decoded defect is one. */
export const rejectionOf = (defect: unknown): RejectReason | undefined => {
  if (!(defect instanceof Error) || defect.name !== rejectedName) return undefined
  return defect.message.startsWith("Overloaded") ? "Overloaded" : defect.message.startsWith("UnknownRpc") ? "UnknownRpc" : undefined
}

/** The reason of a refusal, if this encoded exit is one. */
export const encodedRejectionOf = (exit: unknown): RejectReason | undefined => {
  if (!isRecord(exit) || !isRecord(exit.cause) || exit.cause._tag !== "Die" || !isRecord(exit.cause.defect)) return undefined
  const { message, name } = exit.cause.defect
  if (name !== rejectedName || typeof message !== "string") return undefined
  return message.startsWith("Overloaded") ? "Overloaded" : message.startsWith("UnknownRpc") ? "UnknownRpc" : undefined
}
