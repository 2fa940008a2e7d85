"""The SDK's errors, public (PromptError and its kinds) and internal: the markers the sources
raise and the cache entries that raise on `get`."""

from __future__ import annotations

from typing import Any

from ..errors import PromptgateError, UnknownRef


class PromptError(PromptgateError):
    """Base class of the SDK's errors."""


class PromptNotFound(UnknownRef, PromptError, LookupError):
    """The prompt, version or label does not exist (or the label was removed)."""


class PromptAccessError(PromptError):
    """The registry refused the API key (401) or its role (403). Never served around."""


class PromptUnavailable(PromptError):
    """The registry cannot be reached and nothing is cached or locked for this prompt."""


class _Transient(Exception):
    """Registry down, timed out, or 5xx: retry later, keep serving what we have."""


class _Failure:
    """A cache entry that raises on `get` (label removed, key refused)."""

    __slots__ = ("cls", "message")

    def __init__(self, cls: type[Exception], message: str) -> None:
        self.cls, self.message = cls, message

    def raise_(self) -> Any:
        raise self.cls(self.message)


# -- immutable values -----------------------------------------------------------------------------


class _NotFound(Exception):
    pass
