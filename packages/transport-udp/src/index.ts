/**
 * @weft/transport-udp — the UDP transport: `TransportUdp.layer({ port: 7100 })`.
 */
export * as TransportUdp from "./TransportUdp.js"
