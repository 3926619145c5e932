/**
 * `@weft/core/testing` — test kits shared by every package: the transport compliance suite.
 */
export * as TransportCompliance from "./TransportCompliance.js"
