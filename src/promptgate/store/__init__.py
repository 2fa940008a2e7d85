"""The registry store: the only code that speaks SQL (SQLAlchemy Core, SQLite or PostgreSQL).

Guarantees, enforced here and in the database:
- versions are numbered 1, 2, 3 ... per prompt with no gaps or duplicates under concurrent
  writers, and identical content is stored once (unique (prompt, content_hash));
- versions and audit events are never updated, deleted or replaced (triggers);
- a version read back is checked against its content hash (`integrity`): edited rows are refused;
- every label move is a compare-and-swap in one transaction with its audit event.

One module per concern: `core` (the Store: versions, labels, audit events, response cache,
reports written), `engine` (URLs and the SQLAlchemy engine), `keys`, `promotions`, `reports`,
`webhooks`, `server_settings` and `sessions` (the registry server's tables), `schema` and
`integrity`; `protocol` (the `Registry` interface that `Store` and the server client share).
This package re-exports their public names.
"""

from __future__ import annotations

from ..domain import PendingPush
from .core import LATEST, NOTIFY_CHANNEL, Store, max_seq
from .engine import default_sqlite_url, engine_url, utcnow
from .keys import (
    ROLES,
    LocalKeys,
    create_key,
    key_by_name,
    list_keys,
    lookup_key,
    revoke_key,
)
from .promotions import (
    create_promotion,
    decide_promotion,
    get_promotion,
    list_promotions,
    record_refused_report,
    update_promotion,
)
from .protocol import Registry
from .reports import get_report
from .server_settings import get_setting
from .webhooks import list_deliveries, record_delivery

__all__ = [
    "LATEST",
    "NOTIFY_CHANNEL",
    "ROLES",
    "LocalKeys",
    "PendingPush",
    "Registry",
    "Store",
    "create_key",
    "create_promotion",
    "decide_promotion",
    "default_sqlite_url",
    "engine_url",
    "get_promotion",
    "get_report",
    "get_setting",
    "key_by_name",
    "list_deliveries",
    "list_keys",
    "list_promotions",
    "lookup_key",
    "max_seq",
    "record_delivery",
    "record_refused_report",
    "revoke_key",
    "update_promotion",
    "utcnow",
]
