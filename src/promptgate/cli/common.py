"""What every command shares: the project context, output helpers and option types."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from ..config import Config
    from ..remote import Backend
    from ..store import Registry


@dataclass
class AppContext:
    """Lazily loaded config and store, so that `--help` and `--version` touch nothing."""

    registry_flag: str | None = None
    _config: Config | None = None
    _backend: Backend | None = None
    _closers: list[Any] = field(default_factory=list)

    @property
    def config(self) -> Config:
        if self._config is None:
            from ..config import load_config

            self._config = load_config()
        return self._config

    @property
    def registry_url(self) -> str:
        from ..config import resolve_registry

        return resolve_registry(self.registry_flag, self.config)

    def backend(self, *, create: bool = False) -> Backend:
        """The registry (opened once): its store, its key admin, and its server if it is one."""
        if self._backend is None:
            from ..remote import open_backend

            self._backend = open_backend(self.registry_url, create=create)
            if not create:  # (kept first: close() closes it even when this raises)
                self._backend.store.ensure_ready()
        return self._backend

    def store(self, *, create: bool = False) -> Registry:
        return self.backend(create=create).store

    def close(self) -> None:
        if self._backend is not None:
            self._backend.store.close()
            self._backend = None


def console(stderr: bool = False) -> Console:
    """A rich console that stays readable when piped: honour COLUMNS, else a wide default."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty():
        width = int(os.environ.get("COLUMNS") or 160)
    return Console(file=stream, width=width, soft_wrap=False, highlight=False)


def emit_json(data: Any) -> None:
    """stdout holds exactly one JSON document."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def note(message: str) -> None:
    """Progress and diagnostics go to stderr, never stdout."""
    click.echo(message, err=True)


def parse_version_opt(value: str | None, flag: str) -> int | None | str:
    """`vN` -> N, `none` -> None, absent -> "any"."""
    if value is None:
        return "any"
    if value == "none":
        return None
    if value.startswith("v") and value[1:].isascii() and value[1:].isdecimal():
        return int(value[1:])
    raise click.BadParameter(f"expected vN or none, not {value!r}", param_hint=flag)
