"""Reads check what they read: a version's content must hash to its stored content_hash.

The triggers keep promptgate's own writes from rewriting history, but anyone holding the database
file (or a superuser on PostgreSQL) can still drop a trigger and edit a row. Every version read
from the database is therefore checked against its hash before it is served; a mismatch is a
`RegistryIntegrityError`, never the edited text.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..canonical import content_hash
from ..errors import RegistryIntegrityError


def verified_content(prompt: str, version: int, stored_hash: str, text: str) -> dict[str, Any]:
    """The content of `prompt@v<version>` parsed from its stored `text`, if it hashes to
    `stored_hash` the way push computed it (`canonical.content_hash`).

    Push stores the canonical JSON itself, so hashing the stored bytes settles the common case
    without re-serialising; only text that is not byte-canonical is parsed and hashed again."""
    try:
        content = json.loads(text)
    except ValueError:
        raise RegistryIntegrityError(
            f"registry integrity: {prompt}@v{version}: stored content is not JSON "
            "(the database was edited); refusing to serve it"
        ) from None
    if hashlib.sha256(text.encode("utf-8")).hexdigest() == stored_hash:
        return content  # type: ignore[no-any-return]
    try:
        actual = content_hash(content)
    except (TypeError, ValueError):
        actual = "unhashable"
    if actual != stored_hash:
        raise RegistryIntegrityError(
            f"registry integrity: {prompt}@v{version}: stored content hashes to {actual}, "
            f"not its content_hash {stored_hash} (the database was edited); refusing to serve it"
        )
    return content  # type: ignore[no-any-return]
