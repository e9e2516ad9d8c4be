#!/usr/bin/env python3
"""TCP round trip over loopback: 64-byte ping-pong with TCP_NODELAY, median of N (the
machine's floor for a request/response on 127.0.0.1; docs/benchmarks.md)."""
import socket
import statistics
import sys
import threading
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)


def echo():
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(64):
        conn.sendall(data)


threading.Thread(target=echo, daemon=True).start()
client = socket.create_connection(server.getsockname())
client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
payload = b"x" * 64
samples = []
for _ in range(N):
    began = time.perf_counter_ns()
    client.sendall(payload)
    received = 0
    while received < len(payload):
        received += len(client.recv(64))
    samples.append(time.perf_counter_ns() - began)
samples.sort()
print(f"loopback round trip: median {statistics.median(samples) / 1000:.1f} µs, "
      f"p99 {samples[int(N * 0.99)] / 1000:.1f} µs over {N}")
