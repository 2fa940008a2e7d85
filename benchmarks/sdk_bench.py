"""SDK benchmark: what an application pays for `PromptClient` (DESIGN §8).

    python benchmarks/sdk_bench.py            # about 2.5 min (2 min of it watching idle clients)
    python benchmarks/sdk_bench.py --quick    # about 25 s (a 16 s idle window, scaled to 1 min)

Prints:
- cached `get` p50/p99 (target p50 <= 1 us), timed in batches of 100 calls (a clock read
  costs more than a get) and also one call at a time (clock overhead subtracted);
- `get` + `render` of a 3-message template, and `get` + `openai_kwargs` (target <= 20 us);
- move-visible lag with refresh="events": from the moment the label move's PUT has been
  answered to the first `get` that returns the new version (target p99 <= 1 s);
- requests per minute an idle client sends: events (default) and poll (ttl_s=30), one label.

The registry server runs in a child process (this file with `--serve`), as in production, so
its work does not share the client's GIL; it counts the requests it receives by path. Figures
are measurements, not tests: the exit status is 0 whatever they are.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

CONTENT = {
    "model": {"name": "gpt-4o-mini-2024-07-18", "temperature": 0.2, "max_tokens": 300},
    "messages": [
        {"role": "system", "content": "You are a concise support analyst for {{ team }}."},
        {"role": "user", "content": "Summarize in at most {{ max_words }} words:"},
        {"role": "user", "content": "{{ facts }}"},
    ],
    "inputs": {"max_words": {"default": 60}, "team": {"default": "billing"}},
}


# -- the server process -----------------------------------------------------------------------


class CountingApp:
    """ASGI wrapper: counts requests by path; GET /_bench/requests returns the counts."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"] == "/_bench/requests":
                body = json.dumps(self.counts).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            self.counts[
                scope["path"].split("/")[2] if scope["path"].count("/") >= 2 else scope["path"]
            ] += 1
        await self.app(scope, receive, send)


def serve(registry: str) -> None:
    from promptgate.server import ServerSettings, create_app
    from promptgate.server.thread import ServerThread

    app = CountingApp(create_app(ServerSettings(registry=registry)))
    server = ServerThread(app).start()
    print(json.dumps({"url": server.url}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.server.force_exit = True
    server.stop()


# -- measurements -----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:.3f} us" if seconds < 1e-5 else f"{seconds * 1e6:.1f} us"


def time_get_batched(get: Any, batch: int = 100, batches: int = 5000) -> list[float]:
    """Per-call time of `get` in batches (no wrapper call: the loop is all that is added)."""
    clock = time.perf_counter
    out = []
    for _ in range(batches):
        t0 = clock()
        for _ in range(batch):
            get("summarize", label="production")
        out.append((clock() - t0) / batch)
    return out


def time_each(fn: Any, n: int) -> list[float]:
    clock = time.perf_counter_ns
    overhead = statistics.median([-(clock() - clock()) for _ in range(20000)])
    out = []
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(max(0, clock() - t0 - overhead) / 1e9)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", metavar="REGISTRY", help=argparse.SUPPRESS)
    parser.add_argument("--moves", type=int, default=None)
    parser.add_argument("--idle-s", type=float, default=None)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    import httpx

    from promptgate.domain import LabelMove
    from promptgate.promptfile import validate_content
    from promptgate.registry import push_specs
    from promptgate.sdk import PromptClient
    from promptgate.store import Store, create_key

    moves = args.moves or (30 if args.quick else 100)
    idle_s = args.idle_s or (16.0 if args.quick else 125.0)
    tmp = tempfile.mkdtemp(prefix="promptgate-sdk-bench-")
    registry = f"sqlite:///{tmp}/registry.db"
    store = Store(registry, create=True)
    store.migrate()
    for i in (1, 2):
        c = json.loads(json.dumps(CONTENT))
        c["messages"][0]["content"] += f" (v{i})"
        push_specs(store, [validate_content("summarize", c)], message=f"v{i}", author="bench")
    store.move_labels(
        [LabelMove("summarize", "production", 1, None), LabelMove("summarize", "staging", 1, None)],
        actor="bench",
    )
    viewer, editor = create_key(store, "app", "viewer"), create_key(store, "ops", "editor")

    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", registry],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    url = json.loads(proc.stdout.readline())["url"]
    ops = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {editor}"}, timeout=10)
    rows: list[tuple[str, str, str, str]] = []

    def counts() -> Counter[str]:
        return Counter(ops.get("/_bench/requests").json())

    try:
        client = PromptClient(url, api_key=viewer)
        p = client.get("summarize", label="production")
        get = client.get
        for _ in range(20000):  # warm up
            get("summarize", label="production")

        batched = time_get_batched(get)
        each = time_each(lambda: get("summarize", label="production"), 200_000)
        rows.append(
            (
                "cached get, p50 / p99 (batches of 100)",
                f"{fmt_us(pct(batched, 0.5))} / {fmt_us(pct(batched, 0.99))}",
                "p50 <= 1 us",
                "ok" if pct(batched, 0.5) <= 1e-6 else "MISS",
            )
        )
        rows.append(
            (
                "cached get, p50 / p99 (one call at a time)",
                f"{fmt_us(pct(each, 0.5))} / {fmt_us(pct(each, 0.99))}",
                "",
                "",
            )
        )

        def get_render() -> Any:
            return get("summarize", label="production").render(facts="Order 1182 broke.")

        def get_kwargs() -> Any:
            return get("summarize", label="production").openai_kwargs(facts="Order 1182.")

        assert len(get_render()) == 3
        rendered = time_each(get_render, 20000)
        kwargs = time_each(get_kwargs, 20000)
        rows.append(
            (
                "get + render (3 messages), p50 / p99",
                f"{fmt_us(pct(rendered, 0.5))} / {fmt_us(pct(rendered, 0.99))}",
                "<= 20 us",
                "ok" if pct(rendered, 0.5) <= 20e-6 else "MISS",
            )
        )
        rows.append(
            (
                "get + openai_kwargs, p50 / p99",
                f"{fmt_us(pct(kwargs, 0.5))} / {fmt_us(pct(kwargs, 0.99))}",
                "",
                "",
            )
        )

        client.get("summarize", label="staging")
        lags = []
        for i in range(moves):
            target = 2 if i % 2 == 0 else 1
            ops.put(
                "/v1/prompts/summarize/labels/staging", json={"version": target, "reason": "bench"}
            ).raise_for_status()
            t0 = time.perf_counter()
            while get("summarize", label="staging").version != target:
                time.sleep(0.0002)
                if time.perf_counter() - t0 > 10:
                    raise RuntimeError("a move was not seen within 10 s")
            lags.append(time.perf_counter() - t0)
            time.sleep(0.02)
        rows.append(
            (
                f"move-visible lag, events, p50 / p99 ({moves} moves)",
                f"{pct(lags, 0.5) * 1e3:.1f} ms / {pct(lags, 0.99) * 1e3:.1f} ms",
                "p99 <= 1 s",
                "ok" if pct(lags, 0.99) <= 1.0 else "MISS",
            )
        )
        client.close()
        del p

        # idle clients: one label each, nothing moves. The closed client's in-flight long-poll
        # started before the window, so it is not counted.
        idle_events = PromptClient(url, api_key=viewer)
        idle_poll = PromptClient(url, api_key=viewer, refresh="poll")
        before = counts()
        t0 = time.monotonic()
        idle_events.get("summarize", label="production")
        idle_poll.get("summarize", label="production")
        time.sleep(idle_s)
        after = counts()
        elapsed = time.monotonic() - t0
        delta = after - before
        per_min = 60.0 / elapsed
        # the first fetches (one snapshot, one GET) are not idle traffic
        events_n = delta["events"] + max(0, delta["snapshot"] - 1)
        poll_n = max(0, delta["prompts"] - 1)
        rows.append(
            (
                "idle client requests/min, events (long-poll 25 s)",
                f"{events_n * per_min:.1f} ({events_n} in {elapsed:.0f} s)",
                "",
                "",
            )
        )
        rows.append(
            (
                "idle client requests/min, poll ttl_s=30",
                f"{poll_n * per_min:.1f} ({poll_n} in {elapsed:.0f} s)",
                "",
                "",
            )
        )
        idle_events.close()
        idle_poll.close()
    finally:
        ops.close()
        proc.stdin.close()
        proc.wait(timeout=30)
        store.close()

    width = max(len(r[0]) for r in rows)
    print(f"promptgate SDK benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    for name, value, target, verdict in rows:
        print(f"  {name:<{width}}  {value:>24}  {target:<12} {verdict}")


if __name__ == "__main__":
    main()
