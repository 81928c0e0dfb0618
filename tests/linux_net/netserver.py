"""A small test server, run inside a test network namespace.

    python3 netserver.py [--tcp P,P,...] [--udp P,...] [--sink P] [--source P:BYTES]

--tcp    accept and close at once (enough for `nc -z`)
--udp    echo every datagram back to its sender
--sink   read each connection until EOF, then answer with the byte count
--source send BYTES zero bytes to each connection, then close

Binds to every address of its namespace, prints "ready" once all sockets
listen, and serves until killed.
"""
from __future__ import annotations

import argparse
import selectors
import socket
import sys
import threading


def ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p]


def sink(conn: socket.socket) -> None:
    total = 0
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            total += len(data)
        conn.sendall(f"{total}\n".encode())


def source(conn: socket.socket, size: int) -> None:
    chunk = b"\0" * 65536
    with conn:
        left = size
        while left > 0:
            n = conn.send(chunk[: min(left, len(chunk))])
            left -= n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp", type=ports, default=[])
    parser.add_argument("--udp", type=ports, default=[])
    parser.add_argument("--sink", type=int)
    parser.add_argument("--source")
    args = parser.parse_args()

    sel = selectors.DefaultSelector()
    for port in args.tcp:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(64)
        sel.register(s, selectors.EVENT_READ, "tcp")
    for port in args.udp:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        sel.register(s, selectors.EVENT_READ, "udp")
    if args.sink:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", args.sink))
        s.listen(8)
        sel.register(s, selectors.EVENT_READ, "sink")
    source_size = 0
    if args.source:
        port, size = args.source.split(":")
        source_size = int(size)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(port)))
        s.listen(8)
        sel.register(s, selectors.EVENT_READ, "source")

    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            sock, kind = key.fileobj, key.data
            if kind == "udp":
                data, peer = sock.recvfrom(65536)
                sock.sendto(data, peer)
                continue
            conn, _ = sock.accept()
            if kind == "tcp":
                conn.close()
            elif kind == "sink":
                threading.Thread(target=sink, args=(conn,), daemon=True).start()
            else:
                threading.Thread(target=source, args=(conn, source_size), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
