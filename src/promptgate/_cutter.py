"""Cutting an httpx request in flight from another thread (the SDK's close())."""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from typing import Any


class Cutter:
    """The sockets of one httpx client, recorded as they connect (httpcore's `trace` request
    extension), so that `close()` on another thread can end a long-poll in flight at once:
    shutdown() wakes a read blocked on the socket, which close() would not. The thread that
    owns the client still closes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._cut = False

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets = [s for s in self._sockets if s.fileno() != -1]
            self._sockets.append(sock)
            cut = self._cut
        if cut:  # connected while being cut: no request may start after cut()
            self._shutdown(sock)

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # closed meanwhile by its owner
            pass
