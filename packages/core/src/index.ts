/**
 * @weft/core — contracts and the overlay. Every module is a namespace:
 * `import { Node, Messages, Transport } from "@weft/core"`.
 */
export * as Actor from "./Actor.js"
export * as Canonical from "./Canonical.js"
export * as Channel from "./Channel.js"
export * as Codec from "./Codec.js"
export * as Control from "./Control.js"
export * as Envelope from "./Envelope.js"
export * as Identity from "./Identity.js"
export * as Limits from "./Limits.js"
export * as Link from "./Link.js"
export * as LinkPlain from "./LinkPlain.js"
export * as LinkSecure from "./LinkSecure.js"
export * as Messages from "./Messages.js"
export * as Node from "./Node.js"
export * as NodeId from "./NodeId.js"
export * as NodeRpc from "./NodeRpc.js"
export * as Simulation from "./Simulation.js"
export * as Transport from "./Transport.js"
export * as TransportMemory from "./TransportMemory.js"
export * as TransportSim from "./TransportSim.js"
export * as WeftError from "./WeftError.js"
