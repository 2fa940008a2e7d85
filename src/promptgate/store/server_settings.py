"""The registry server's settings (table `settings`), such as the secret that signs web UI
sessions: created on first use, the first writer winning."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .core import Store
from .schema import settings


def get_setting(store: Store, key: str, default: Any) -> str:
    """A setting, created from `default()` atomically on first use (first writer wins)."""
    with store.reading() as conn:
        value = conn.scalar(sa.select(settings.c.value).where(settings.c.key == key))
    if value is not None:
        return str(value)

    def run(conn: Connection) -> str:
        found = conn.scalar(sa.select(settings.c.value).where(settings.c.key == key))
        if found is not None:
            return str(found)
        made = str(default())
        conn.execute(settings.insert().values(key=key, value=made))
        return made

    result: str = store.write_retrying(run)
    return result
