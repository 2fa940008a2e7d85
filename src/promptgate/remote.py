"""Opening a registry by URL: a database store directly, or a registry server over HTTP."""

from __future__ import annotations

from .errors import BadInput
from .store import Store


def open_store(url: str, *, create: bool = False) -> Store:
    """A store for `url`: sqlite:///..., postgresql://... (http(s):// needs the server)."""
    if url.startswith(("http://", "https://")):
        raise BadInput(f"{url}: a registry server URL needs `promptgate serve` support, "
                       "which this build does not include yet")
    if not url.startswith(("sqlite://", "postgresql://", "postgres://", "postgresql+psycopg://")):
        raise BadInput(f"bad registry URL {url!r}: use sqlite:///path or postgresql://...")
    return Store(url, create=create)
