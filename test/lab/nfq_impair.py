#!/usr/bin/env python3
"""Reordering shim for the Weft network lab: an NFQUEUE daemon, standard library only.

The kernel here has no netem and no nft `queue`, so `iptables -j NFQUEUE --queue-num N` hands forwarded
packets to this process, which holds each one for a random delay in [delay, delay + jitter] ms and then
accepts it. Packets of one flow overtake each other whenever a later one draws a shorter delay.

It speaks raw nfnetlink_queue over AF_NETLINK/NETLINK_NETFILTER (no libnetfilter_queue binding needed).
Counts: packets held, and overtakes: packets released after a later-arriving packet of the same flow
(source address, destination address, IP protocol). On SIGTERM/SIGINT every held packet is released and
one JSON line of counts goes to stdout; `ready` goes to stdout once the queue is bound.

usage: nfq_impair.py --queue N [--queue M ...] [--delay MS] [--jitter MS] [--seed S]
"""
import argparse
import errno
import heapq
import json
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQA_CFG_F_FAIL_OPEN = 1
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NF_ACCEPT = 1
AF_INET = 2
# Enough of the packet to read the IPv4 addresses and protocol.
COPY_RANGE = 20


def attr(kind, payload):
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def message(msg_type, flags, queue, attrs, seq=0):
    """One nfnetlink message: nlmsghdr, nfgenmsg (family, version 0, res_id = queue, big-endian), attributes."""
    body = struct.pack("=BBH", AF_INET, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0) + body


def parse_attrs(data):
    attrs = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        attrs[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return attrs


class Impairer:
    def __init__(self, queues, delay_ms, jitter_ms, seed):
        self.queues = queues
        self.delay_ms = delay_ms
        self.jitter_ms = jitter_ms
        self.rng = random.Random(seed)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, 0))
        self.held = []  # heap of (release_at, order, queue, packet_id, flow, arrival)
        self.order = 0
        self.arrivals = {}  # flow -> next arrival number
        self.released_max = {}  # flow -> largest arrival number released so far
        self.packets = 0
        self.overtaken = 0
        self.enobufs = 0
        self.stopping = False
        self.seq = 0

    def request(self, queue, attrs):
        self.seq += 1
        self.sock.send(message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, queue, attrs, self.seq))
        reply = self.sock.recv(65536)
        kind = struct.unpack_from("=H", reply, 4)[0]
        if kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", reply, 16)[0]
            if code != 0:
                raise OSError(-code, f"nfqueue config for queue {queue}: {errno.errorcode.get(-code, code)}")

    def bind(self):
        for queue in self.queues:
            self.request(queue, [attr(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, socket.htons(AF_INET)))])
            self.request(queue, [attr(NFQA_CFG_PARAMS, struct.pack("!IB", COPY_RANGE, NFQNL_COPY_PACKET) + b"\0\0\0")])
            self.request(queue, [attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 8192))])
            # Fail open: a full queue accepts packets instead of dropping them (the lab's loss is the nft rule's).
            self.request(queue, [
                attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
                attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
            ])

    def verdict(self, queue, packet_id):
        hdr = attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        self.sock.send(message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, queue, [hdr]))

    def on_packet(self, queue, attrs):
        packet_id = struct.unpack_from("!I", attrs[NFQA_PACKET_HDR], 0)[0]
        payload = attrs.get(NFQA_PAYLOAD, b"")
        flow = (payload[12:16], payload[16:20], payload[9:10]) if len(payload) >= 20 else b""
        arrival = self.arrivals.get(flow, 0)
        self.arrivals[flow] = arrival + 1
        self.packets += 1
        hold = (self.delay_ms + self.rng.random() * self.jitter_ms) / 1000.0
        self.order += 1
        heapq.heappush(self.held, (time.monotonic() + hold, self.order, queue, packet_id, flow, arrival))

    def receive(self):
        try:
            data = self.sock.recv(1 << 20)
        except OSError as error:
            # The kernel could not queue a notification to us; fail-open keeps traffic moving.
            if error.errno == errno.ENOBUFS:
                self.enobufs += 1
                return
            raise
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if length < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                queue = socket.ntohs(struct.unpack_from("=H", data, offset + 18)[0])
                self.on_packet(queue, parse_attrs(data[offset + 20:offset + length]))
            offset += (length + 3) & ~3

    def release(self, everything=False):
        now = time.monotonic()
        while self.held and (everything or self.held[0][0] <= now):
            _, _, queue, packet_id, flow, arrival = heapq.heappop(self.held)
            last = self.released_max.get(flow, -1)
            if arrival < last:
                self.overtaken += 1
            else:
                self.released_max[flow] = arrival
            self.verdict(queue, packet_id)

    def stats(self):
        return {"type": "nfq", "packets": self.packets, "overtaken": self.overtaken, "enobufs": self.enobufs}

    def run(self):
        self.bind()
        print(json.dumps({"type": "ready", "queues": self.queues}), flush=True)
        while not self.stopping:
            timeout = max(0.0, self.held[0][0] - time.monotonic()) if self.held else 0.2
            try:
                readable, _, _ = select.select([self.sock], [], [], timeout)
            except InterruptedError:
                continue
            if readable:
                self.receive()
            self.release()
        self.release(everything=True)
        print(json.dumps(self.stats()), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, action="append", required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="base hold, ms")
    parser.add_argument("--jitter", type=float, default=5.0, help="uniform extra hold, ms")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    impairer = Impairer(args.queue, args.delay, args.jitter, args.seed)

    def stop(_signum, _frame):
        impairer.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    impairer.run()


if __name__ == "__main__":
    sys.exit(main())
