#!/usr/bin/env python3
"""Idle keep-alive connections against one proxy (issue 27 section 4, "idle connections").

For each count N: open N client connections, send one request on each and read its answer, then
hold them all open and idle; measure the proxy's resident memory (the sum of VmRSS over its
process tree) before, while held, and after every connection closed (after a settle pause), and
the latency of keep-alive requests on one more connection while the N are held. Then the largest
count is repeated as bursts, to see whether memory is given back and whether it grows from burst
to burst. Prints one JSON object per line: {"kind": "count", ...} and {"kind": "burst", ...}.
"""

import argparse
import json
import os
import resource
import socket
import statistics
import sys
import time


def tree_pids(pid):
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
        except OSError:
            pass
    return sorted(set(pids))


def rss_kib(pid):
    total = 0
    for each in tree_pids(pid):
        try:
            with open(f"/proc/{each}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def request_bytes(host, path):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hold-connections\r\n\r\n".encode()


def read_response(sock):
    """Reads one response with a Content-Length body; returns its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the head ended")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the body ended")
        body += chunk
    return status


def open_and_ask(port, path, count):
    held, failed = [], 0
    message = request_bytes("127.0.0.1", path)
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(message)
            if read_response(sock) != 200:
                failed += 1
            held.append(sock)
        except OSError:
            failed += 1
    return held, failed


def latency_while_held(port, path, requests):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    message = request_bytes("127.0.0.1", path)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        sock.sendall(message)
        read_response(sock)
        times.append((time.perf_counter() - start) * 1e6)
    sock.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def close_all(held):
    for sock in held:
        try:
            sock.close()
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the proxy's main process")
    parser.add_argument("--counts", default="100,1000,10000")
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--path", default="/")
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--latency-requests", type=int, default=500)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",") if c]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(counts) + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    # One request first, so lazily built state (pools, the first connection upstream) is in
    # the baseline rather than charged to the first count.
    held, _ = open_and_ask(args.port, args.path, 1)
    close_all(held)
    time.sleep(args.settle)
    for count in counts:
        before = rss_kib(args.pid)
        held, failed = open_and_ask(args.port, args.path, count)
        time.sleep(args.settle)
        during = rss_kib(args.pid)
        p50, p99 = latency_while_held(args.port, args.path, args.latency_requests)
        close_all(held)
        time.sleep(args.settle)
        after = rss_kib(args.pid)
        print(json.dumps({
            "kind": "count", "count": count, "failed": failed, "rss_before_kib": before,
            "rss_held_kib": during, "rss_after_kib": after,
            "kib_per_connection": round((during - before) / max(1, count - failed), 3),
            "p50_us": round(p50, 1), "p99_us": round(p99, 1),
        }), flush=True)
    largest = max(counts)
    start = rss_kib(args.pid)
    for burst in range(1, args.bursts + 1):
        held, failed = open_and_ask(args.port, args.path, largest)
        time.sleep(args.settle)
        during = rss_kib(args.pid)
        close_all(held)
        time.sleep(args.settle)
        print(json.dumps({
            "kind": "burst", "burst": burst, "count": largest, "failed": failed,
            "rss_start_kib": start, "rss_held_kib": during, "rss_after_kib": rss_kib(args.pid),
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
