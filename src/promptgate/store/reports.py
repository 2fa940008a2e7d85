"""Gate reports kept by the registry (table `reports`, written by `Store.save_report`), read back
by id."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from .core import Store
from .schema import reports


def get_report(store: Store, report_id: int) -> dict[str, Any] | None:
    with store.reading() as conn:
        text = conn.scalar(sa.select(reports.c.report).where(reports.c.id == report_id))
    return json.loads(text) if text else None
