/**
 * @weft/ephemeral — lifespan-limited, proof-of-work-stamped broadcasts relayed and stored by agreeable
 * nodes, and private channels opened with lattice keys published on the chain.
 * Every module is a namespace: `import { EphemeralNode, Message, Pow } from "@weft/ephemeral"`.
 */
export * as Chain from "./Chain.js"
export * as Channel from "./Channel.js"
export * as EphemeralError from "./EphemeralError.js"
export * as EphemeralLimits from "./EphemeralLimits.js"
export * as EphemeralNode from "./EphemeralNode.js"
export * as EphemeralStore from "./EphemeralStore.js"
export * as Message from "./Message.js"
export * as Pow from "./Pow.js"
export * as Validate from "./Validate.js"
