"""Domain errors, in one place.

The library raises these; only the CLI maps them to exit codes (see ``exit_code``). Every message
is one line that says what went wrong and where, so that it can be printed without a traceback.
"""

from __future__ import annotations


class PromptgateError(Exception):
    """Base class: an error promptgate can explain in one line."""

    exit_code = 2


class BadInput(PromptgateError):
    """Input refused before anything was written or run (files, refs, usage)."""


class PromptFileError(BadInput):
    """A prompt file is malformed or invalid."""


class SuiteError(BadInput):
    """An eval suite file is malformed or invalid."""


class ConfigError(BadInput):
    """promptgate.yaml is malformed or invalid."""


class RenderError(BadInput):
    """A template failed to parse or render (missing variable, sandbox escape)."""


class GraphError(BadInput):
    """The dependency graph is invalid: a cycle or a `from:` naming an unknown prompt."""


class UnknownRef(BadInput):
    """A ref names a prompt, version or label that does not exist."""


class ProtectedLabel(BadInput):
    """A protected label may move only through promote or rollback."""


class LabelConflict(PromptgateError):
    """The label moved since it was read (compare-and-swap failed)."""

    exit_code = 3


class StoreClosed(PromptgateError):
    """The registry was used after `Store.close()` (a thread outliving a stopping server)."""


class ImmutableError(PromptgateError):
    """Versions and audit events are never updated or deleted."""


class RegistryIntegrityError(PromptgateError):
    """A stored row fails its own check: a version's content does not hash to its content_hash
    (the database was edited behind promptgate's back). Not the caller's input and not a race:
    exit 4, and the tampered content is never served."""

    exit_code = 4


class ModelError(PromptgateError):
    """A model call failed after retries (network, status, timeout, malformed reply)."""

    exit_code = 1


class ReplayMiss(ModelError):
    """A request was not in the replay recording."""


class GateFailed(PromptgateError):
    """The gate judged the candidate set and it failed; nothing moved."""

    exit_code = 1
