"""The test server's cost per request: promptgate.testing beside the floor of a Starlette app.

Issue #10 asked whether `promptgate.testing` should become a Starlette/uvicorn app over
`server/thread.py`, provided it would not slow the gate benchmarks. This measures that first.
Each server runs in its own process; the gate's own client (`providers.openai_client`, 32 in
flight) sends the same chat completions to each, and the server process's CPU per request is
read from /proc. The Starlette app here only echoes (no reply rules, faults or recording), so it
is a floor: a real port could only cost more.

    .venv/bin/python benchmarks/stub_server_bench.py [--requests 3000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from tempfile import TemporaryDirectory

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from promptgate.providers import openai_client  # noqa: E402

STARLETTE_APP = textwrap.dedent(
    """
    import json, time
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def chat(request):
        body = await request.json()
        text = "[gpt-test] " + body["messages"][-1]["content"]
        out = {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
               "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop",
               "message": {"role": "assistant", "content": text}}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}
        return Response(json.dumps(out), media_type="application/json")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(base_url: str, n: int, concurrency: int = 32) -> None:
    client = openai_client(base_url, "bench-key", timeout_s=30, concurrency=concurrency)
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            body = {"model": "gpt-test", "messages": [{"role": "user", "content": f"Say {i}"}]}
            await client.post("/chat/completions", body=body, cast_to=object)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.close()


def wait_listening(port: int, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def measure(cmd: list[str], port: int, n: int) -> tuple[float, float]:
    """(wall ms per request at the client, server CPU ms per request)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        url = f"http://127.0.0.1:{port}/v1"
        asyncio.run(drive(url, 200))  # connections and caches warm
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        asyncio.run(drive(url, n))
        wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    return wall / n * 1000, cpu / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        (Path(tmp) / "stub_app.py").write_text(STARLETTE_APP, "utf-8")
        rows: dict[str, list[tuple[float, float]]] = {"promptgate.testing": [], "starlette": []}
        for _ in range(args.rounds):  # alternate, so that machine load hits both alike
            port = free_port()
            rows["promptgate.testing"].append(
                measure(
                    [sys.executable, "-m", "promptgate.testing", "--port", str(port)],
                    port,
                    args.requests,
                )
            )
            port = free_port()
            uvicorn = [sys.executable, "-m", "uvicorn", "--app-dir", tmp, "stub_app:app"]
            opts = ["--port", str(port), "--log-level", "warning", "--no-access-log"]
            rows["starlette"].append(measure([*uvicorn, *opts], port, args.requests))
    print("| server | client wall per request | server CPU per request |")
    print("|---|---|---|")
    for name, runs in rows.items():
        wall = min(w for w, _ in runs)
        cpu = min(c for _, c in runs)
        label = "Starlette + uvicorn, echo only (a floor)" if name == "starlette" else name
        print(f"| {label} | {wall:.3f} ms | {cpu:.3f} ms |")


if __name__ == "__main__":
    main()
