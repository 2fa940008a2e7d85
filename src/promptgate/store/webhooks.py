"""Webhook deliveries (table `webhook_deliveries`): each attempt to deliver an event, recorded."""

from __future__ import annotations

import sqlalchemy as sa

from ..domain import WebhookDelivery
from .core import Store
from .engine import utcnow
from .schema import webhook_deliveries


def record_delivery(
    store: Store,
    *,
    url: str,
    event_seq: int,
    event_type: str,
    status: int | None,
    attempts: int,
    error: str | None,
) -> None:
    with store.writing() as conn:
        conn.execute(
            webhook_deliveries.insert().values(
                url=url,
                event_seq=event_seq,
                event_type=event_type,
                status=status,
                attempts=attempts,
                error=error,
                at=utcnow(),
            )
        )


def list_deliveries(store: Store) -> list[WebhookDelivery]:
    """Every delivery attempt recorded, oldest first."""
    with store.reading() as conn:
        return [
            WebhookDelivery(
                id=r.id,
                url=r.url,
                event_seq=r.event_seq,
                event_type=r.event_type,
                status=r.status,
                attempts=r.attempts,
                error=r.error,
                at=r.at,
            )
            for r in conn.execute(sa.select(webhook_deliveries).order_by(webhook_deliveries.c.id))
        ]
