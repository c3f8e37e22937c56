"""Latency of ``kgattr serve``: N concurrent clients for T seconds, first on stored products' completions (GET),
then on new products' (POST, each with a title never seen, so its text is encoded).

    python -m kgattr.serve.bench --url http://127.0.0.1:8000 --catalog data/sample.jsonl --clients 20 --seconds 20
    python -m kgattr.serve.bench --model models/sample --catalog data/sample.jsonl    # starts and stops a server
"""
from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from contextlib import contextmanager, nullcontext
from urllib.parse import quote, urlsplit

import numpy as np


def _load(url: str, clients: int, seconds: float, request) -> dict:
    """Run ``request(connection, n) -> status`` from ``clients`` threads for ``seconds``; latency percentiles
    in ms, requests per second and errors (status other than 200, or an exception)."""
    import sys

    where = urlsplit(url)
    # the clients' threads hand the GIL on every 0.5 ms, not 5: else an answer that has arrived waits for it, and
    # the figures measure this process more than the server (at 50 clients, p95 99 ms against 58 ms)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = time.perf_counter()
    stop = start + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
        n = 0
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                ok = request(conn, i * 1_000_000 + n) == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
            latencies[i].append(time.perf_counter() - t)
            errors[i] += not ok
            n += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.setswitchinterval(interval)
    elapsed = time.perf_counter() - start
    ms = np.array([x for xs in latencies for x in xs]) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (float("nan"),) * 3
    return {"requests": len(ms), "errors": sum(errors), "rps": round(len(ms) / elapsed, 1),
            "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1), "p99_ms": round(float(p99), 1)}


def run(url: str, products, *, clients: int = 20, seconds: float = 20) -> dict:
    """Both loads against the server at ``url``.

    Args:
        products: catalog products the server's model knows (their SKUs are asked for; their text, changed,
            makes the new products).

    Returns {"stored": {...}, "new": {...}}, each as :func:`_load` reports.
    """
    import secrets

    products = list(products)
    run_id = secrets.token_hex(4)               # in every title: no text of an earlier run is in the server's cache

    def stored(conn, n: int) -> int:
        conn.request("GET", f"/api/products/{quote(products[n % len(products)].sku, safe='')}/completions")
        response = conn.getresponse()
        response.read()
        return response.status

    def new(conn, n: int) -> int:
        p = products[n % len(products)]
        line = {"sku": f"bench-{n}", "title": f"{p.title} {run_id}-{n}", "description": p.description,
                "category": list(p.category), "attributes": dict(list(p.attributes.items())[:2])}
        conn.request("POST", "/api/completions", body=json.dumps(line), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status

    return {"stored": _load(url, clients, seconds, stored), "new": _load(url, clients, seconds, new)}


@contextmanager
def server(model, db=None, timeout: float = 1800):
    """A ``kgattr serve`` of ``model`` on a free local port, from start (queue filled, every stored product's
    completions computed) to stop; yields its URL."""
    import os
    import secrets
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "kgattr", "serve", "--model", str(model), "--port", str(port)]
    process = subprocess.Popen(argv + (["--db", str(db)] if db else []),
                               env={**os.environ, "KGATTR_TOKEN": secrets.token_urlsafe(16)})
    url, start = f"http://127.0.0.1:{port}", time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"kgattr serve exited with status {process.returncode}")
            if time.monotonic() - start > timeout:
                raise SystemExit(f"kgattr serve did not answer within {timeout:.0f} s")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/stats")
                warm = json.loads(conn.getresponse().read()).get("warm", {})
                if warm.get("cached") == warm.get("products"):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(1)
        print(f"server ready after {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
        yield url
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    from ..io.catalog import read_catalog

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="a running server")
    parser.add_argument("--model", help="instead: start a server of this model directory, stopped at the end")
    parser.add_argument("--db", help="its review store (default: beside the model)")
    parser.add_argument("--catalog", required=True, help="the catalog the model was trained on")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    products = read_catalog(args.catalog)
    with server(args.model, args.db) if args.model else nullcontext(args.url) as url:
        print(json.dumps(run(url, products, clients=args.clients, seconds=args.seconds), indent=1))
