"""Run the app with uvicorn in a background thread (tests, benchmarks, embedding)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


class ServerThread:
    """`with ServerThread(app) as s: httpx.get(s.url + "/v1/...")` on 127.0.0.1, port 0."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(
            target=self.server.run, daemon=True, name="promptgate-server"
        )

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        state = getattr(getattr(self.config.app, "state", None), "pg", None)
        if state is not None:
            state.stopping = True  # open long-polls answer at once instead of holding the stop
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
