"""`python -m promptgate.testing`: the test server from a shell, with reply rules from a script."""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from collections.abc import Mapping, Sequence

from .server import OpenAITestServer


def _load_script(server: OpenAITestServer, path: str) -> int:
    """Load reply rules from a YAML/JSON file: a list of
    ``{match, content, tool_calls?, latency?, regex?}`` (or ``{"rules": [...]}``)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if path.endswith(".json"):
        data = json.loads(text)
    else:
        # lazy, not a cycle: only a YAML script needs the YAML loader
        from ..yamlload import parse_yaml

        data = parse_yaml(text, path).data
    if isinstance(data, Mapping):
        data = data.get("rules", [])
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of rules")
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise ValueError(f"{path}: rule #{i} is not a mapping")
        match = item.get("match")
        if match is not None and item.get("regex"):
            match = re.compile(str(match))
        elif match is not None:
            match = str(match)
        content = item.get("content")
        server.reply(
            match,
            None if content is None else str(content),
            tool_calls=item.get("tool_calls"),
            latency=item.get("latency"),
        )
    return len(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m promptgate.testing",
        description="Run a local OpenAI-compatible chat-completions server (for tests and CI). "
        "Prints its base_url on stdout and serves until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each reply")
    parser.add_argument("--script", help="YAML/JSON file of reply rules: [{match, content}, ...]")
    args = parser.parse_args(argv)

    server = OpenAITestServer(latency=args.latency, host=args.host, port=args.port)
    if args.script:
        n = _load_script(server, args.script)
        print(f"loaded {n} rule(s) from {args.script}", file=sys.stderr)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with server:
        print(server.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0
