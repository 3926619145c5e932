/** The `@weft/core` namespaces the CLI uses, in one place. */
export { Control, Identity, Limits, Messages, Node, NodeId, TransportMemory } from "@weft/core"
