"""Load test of `charrnn serve` on loopback: C concurrent clients, N requests in all.

    python bench/serve_load.py CHECKPOINT [--clients 32] [--requests 2000] [--length 50]

Starts the real server (`python -m charrnn serve CHECKPOINT --quiet`) on a free 127.0.0.1 port,
sends POST /v1/sample requests (seeded, `--length` characters) from `--clients` threads until
`--requests` are answered, and prints errors, requests/s, p50/p99 latency and the server's RSS
before, in the middle and after (it should stay flat). Needs the serve extra.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--length", type=int, default=50)
    a = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "serve", a.checkpoint, "--port",
                             str(port), "--quiet"], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1/sample"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/info", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        lock, latencies, errors, rss = threading.Lock(), [], [], [rss_mib(proc.pid)]
        counter = iter(range(a.requests))

        def client():
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                body = json.dumps({"length": a.length, "seed": k}).encode()
                req = urllib.request.Request(url, data=body,
                                             headers={"Content-Type": "application/json"})
                t0 = time.perf_counter()
                try:
                    with urllib.request.urlopen(req, timeout=120) as r:
                        ok = r.status == 200 and len(json.loads(r.read())["samples"]) == 1
                except OSError as e:
                    ok = False
                    errors.append(str(e))
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    if not ok and not errors:
                        errors.append("bad response")
                    if len(latencies) == a.requests // 2:
                        rss.append(rss_mib(proc.pid))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss.append(rss_mib(proc.pid))
        lat = sorted(latencies)
        print(f"# charrnn serve load test, {os.uname().machine}, {time.strftime('%Y-%m-%d')}: "
              f"{a.clients} clients, {len(lat)} requests of {a.length} characters, "
              f"checkpoint {a.checkpoint}")
        print(f"errors {len(errors)}; {len(lat) / wall:,.0f} requests/s; latency p50 "
              f"{1000 * statistics.median(lat):.1f} ms, p99 {1000 * lat[int(0.99 * len(lat)) - 1]:.1f} "
              f"ms; server RSS MiB before/middle/after: "
              + " / ".join(f"{r:.0f}" for r in rss))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
