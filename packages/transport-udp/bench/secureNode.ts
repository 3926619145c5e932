/**
 * A secure reliable link over a fresh UDP socket on 127.0.0.1, built by hand as `Node.layer` builds it
 * (`LinkReliable` over `LinkSecure` over `TransportUdp`), for the session benches.
 */
import { CongestionControl, Identity, Limits, LinkReliable, LinkSecure, Transport } from "@weft/core"
import type { Link } from "@weft/core"
import type { Scope } from "effect"
import { Effect } from "effect"
import { TransportUdp } from "../src/index.js"

/** A node's link as `Node.layer` builds it: `LinkReliable` over `LinkSecure` over a fresh UDP socket. */
export interface SecureNode {
  readonly secure: LinkSecure.Service
  readonly link: Link.Link["Type"]
}

export const secureNode = (psk: Uint8Array, identity: Identity.Identity): Effect.Effect<SecureNode, never, Scope.Scope> =>
  Effect.gen(function*() {
    const limits = Limits.layer()
    const endpoint = yield* TransportUdp.make({ recvBufferBytes: 4 << 20, sendBufferBytes: 4 << 20 }).pipe(
      Effect.provide(limits),
      Effect.orDie
    )
    const secure = yield* LinkSecure.make({ psk }).pipe(
      Effect.provideService(Transport.Transport, endpoint),
      Effect.provideService(Identity.NodeIdentity, identity),
      Effect.provide(limits)
    )
    const link = yield* LinkReliable.wrap(secure).pipe(Effect.provide(limits), Effect.provide(CongestionControl.layer))
    return { secure, link }
  })
