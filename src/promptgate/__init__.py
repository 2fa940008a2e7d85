"""promptgate: immutable prompt versions, deployment labels and a dependency-aware eval gate.

The public library API. Names load lazily, so `import promptgate` costs almost nothing and
never pulls in the CLI (click) or a server; `promptgate.cli` is the command-line shell over it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS: dict[str, str] = {
    # domain values
    "PromptVersion": "promptgate.domain",
    "Label": "promptgate.domain",
    "LabelMove": "promptgate.domain",
    "AuditEvent": "promptgate.domain",
    "PushResult": "promptgate.domain",
    # errors
    "PromptgateError": "promptgate.errors",
    "BadInput": "promptgate.errors",
    "UnknownRef": "promptgate.errors",
    "LabelConflict": "promptgate.errors",
    "GateFailed": "promptgate.errors",
    "ModelError": "promptgate.errors",
    # files, config, store
    "PromptSpec": "promptgate.promptfile",
    "load_prompt_file": "promptgate.promptfile",
    "Suite": "promptgate.suites",
    "load_suites": "promptgate.suites",
    "Config": "promptgate.config",
    "load_config": "promptgate.config",
    "Store": "promptgate.store",
    "Registry": "promptgate.store",
    "open_store": "promptgate.remote",
    # registry operations
    "push_paths": "promptgate.registry",
    "resolve": "promptgate.registry",
    "set_label": "promptgate.registry",
    "rollback": "promptgate.registry",
    # rendering and the gate
    "render_messages": "promptgate.render",
    "build_graph": "promptgate.graph",
    "check": "promptgate.gate",
    "CheckOutcome": "promptgate.gate",
    "ModelClient": "promptgate.providers",
    # the application SDK
    "PromptClient": "promptgate.sdk",
    "AsyncPromptClient": "promptgate.sdk",
    "Prompt": "promptgate.sdk",
    "PromptSnapshot": "promptgate.sdk",
    "PromptNotFound": "promptgate.sdk",
    "PromptAccessError": "promptgate.sdk",
    "PromptUnavailable": "promptgate.sdk",
    "write_lock": "promptgate.lockfile",
    "read_lock": "promptgate.lockfile",
    "LockfileError": "promptgate.lockfile",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'promptgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .config import Config, load_config
    from .domain import AuditEvent, Label, LabelMove, PromptVersion, PushResult
    from .errors import (
        BadInput,
        GateFailed,
        LabelConflict,
        ModelError,
        PromptgateError,
        UnknownRef,
    )
    from .gate import CheckOutcome, check
    from .graph import build_graph
    from .lockfile import LockfileError, read_lock, write_lock
    from .promptfile import PromptSpec, load_prompt_file
    from .providers import ModelClient
    from .registry import push_paths, resolve, rollback, set_label
    from .remote import open_store
    from .render import render_messages
    from .sdk import (
        AsyncPromptClient,
        Prompt,
        PromptAccessError,
        PromptClient,
        PromptNotFound,
        PromptSnapshot,
        PromptUnavailable,
    )
    from .store import Registry, Store
    from .suites import Suite, load_suites
