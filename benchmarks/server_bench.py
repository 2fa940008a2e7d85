"""Registry server benchmarks: resolve by label over HTTP at concurrency 16 (loopback only,
bounded by time), the 304 path, and create-version latency through the server.

    python benchmarks/server_bench.py [--seconds 5] [--workers 2] [--pg]

The load comes from `wrk` (Debian package `wrk`) when installed, else from an httpx client
(which costs more CPU than the server and so understates the server). The server runs in its
own process(es) under uvicorn; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

APP = """
import os
from promptgate.server import ServerSettings, create_app
app = create_app(ServerSettings(registry=os.environ["BENCH_REGISTRY"]))
"""

PG = os.environ.get("PROMPTGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(registry: str, workers: int, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    (tmp / "bench_app.py").write_text(APP)
    port = free_port()
    env = {**os.environ, "BENCH_REGISTRY": registry, "PYTHONPATH": str(tmp)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/openapi.json", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def wrk(url: str, key: str, seconds: int, extra: list[str]) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            "16",
            "-d",
            f"{seconds}s",
            "-H",
            f"Authorization: Bearer {key}",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} failed responses:\n{out}")
    return rate


def httpx_load(url: str, key: str, seconds: int, headers: dict[str, str]) -> float:
    import asyncio

    async def run() -> int:
        count = 0
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}", **headers}) as c:

            async def worker() -> None:
                nonlocal count
                while time.monotonic() < deadline:
                    r = await c.get(url)
                    assert r.status_code in (200, 304)
                    count += 1

            await asyncio.gather(*(worker() for _ in range(16)))
        return count

    return asyncio.run(run()) / seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg", action="store_true", help="Also measure on PostgreSQL.")
    args = parser.parse_args()
    from promptgate.store import Store, create_key

    engines = ["sqlite"] + (["postgresql"] if args.pg else [])
    rows = []
    for engine in engines:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            schema = None
            if engine == "sqlite":
                registry = f"sqlite:///{tmp / 'registry.db'}"
            else:
                import sqlalchemy as sa

                schema = "bench_" + uuid.uuid4().hex[:8]
                admin = sa.create_engine(
                    PG.replace("postgresql://", "postgresql+psycopg://"),
                    isolation_level="AUTOCOMMIT",
                )
                with admin.connect() as conn:
                    conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
                registry = f"{PG}?options=-csearch_path%3D{schema}"
            store = Store(registry, create=True)
            store.migrate()
            key = create_key(store, "bench", "admin")
            store.close()
            proc, url = start_server(registry, args.workers, tmp)
            try:
                c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
                latencies = []
                for i in range(200):
                    t0 = time.perf_counter()
                    r = c.post(
                        "/v1/prompts/summarize/versions",
                        json={
                            "content": {"model": {"name": "m"}, "template": f"v{i} {{{{ x }}}}"},
                            "message": "bench",
                        },
                    )
                    latencies.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 201, r.text
                c.put("/v1/prompts/summarize/labels/staging", json={"version": 100})
                target = url + "/v1/prompts/summarize?label=staging"
                etag = c.get(target).headers["etag"]
                c.close()
                if shutil.which("wrk"):
                    tool = "wrk"
                    rps = wrk(target, key, args.seconds, [])
                    rps304 = wrk(target, key, args.seconds, ["-H", f"If-None-Match: {etag}"])
                else:
                    tool = "httpx"
                    rps = httpx_load(target, key, args.seconds, {})
                    rps304 = httpx_load(target, key, args.seconds, {"If-None-Match": etag})
                rows.append(
                    {
                        "engine": engine,
                        "load": tool,
                        "workers": args.workers,
                        "resolve_rps": round(rps),
                        "resolve_304_rps": round(rps304),
                        "create_version_ms_p50": round(statistics.median(latencies), 2),
                        "create_version_ms_p99": round(
                            sorted(latencies)[int(len(latencies) * 0.99) - 1], 2
                        ),
                    }
                )
            finally:
                proc.terminate()
                proc.wait(timeout=30)
                if schema:
                    with admin.connect() as conn:
                        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
                    admin.dispose()
    print(
        f"{'engine':<11} {'load':<6} {'workers':>7} {'resolve rps':>12} {'304 rps':>9} "
        f"{'create p50 ms':>14} {'create p99 ms':>14}"
    )
    for r in rows:
        print(
            f"{r['engine']:<11} {r['load']:<6} {r['workers']:>7} {r['resolve_rps']:>12} "
            f"{r['resolve_304_rps']:>9} {r['create_version_ms_p50']:>14} "
            f"{r['create_version_ms_p99']:>14}"
        )
    print("targets: resolve >= 2000 rps at concurrency 16; create-version <= 20 ms on PostgreSQL")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
