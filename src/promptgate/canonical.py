"""Canonical JSON and content hashes: a contract.

``canonical_json(obj)`` is ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8, with floats written by Python's shortest repr and
non-finite numbers refused. ``content_hash`` is the lowercase hex SHA-256 of that. Changing
this function changes every stored hash, every cache key and every lock file: don't.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    """The one byte representation of a JSON value that hashes are taken over."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_hash(obj: Any) -> str:
    """SHA-256 hex of the canonical JSON of `obj`."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()
