"""Refs: `name@v8`, `name@production`, `name` (= @latest), or a path to a draft prompt file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput
from .promptfile import NAME_RE

LABEL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
VERSION_LIKE = re.compile(r"^v[0-9]+$")


@dataclass(frozen=True)
class Ref:
    """A parsed ref: exactly one of `version`, `label` or `path` is set."""

    name: str | None
    version: int | None = None
    label: str | None = None
    path: Path | None = None

    @property
    def is_draft(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        if self.version is not None:
            return f"{self.name}@v{self.version}"
        return f"{self.name}@{self.label}"


def check_label_name(label: str) -> str:
    """A label name must match the pattern and must not look like a version."""
    if not LABEL_RE.match(label) or VERSION_LIKE.match(label):
        raise BadInput(f"bad label name {label!r}: use [a-z][a-z0-9_-]{{0,31}}, not v<number>")
    return label


def parse_ref(text: str) -> Ref:
    """Parse a ref; a string that names an existing file (or ends in .yaml/.yml) is a draft."""
    if text.endswith((".yaml", ".yml")) or "/" in text or Path(text).is_file():
        path = Path(text)
        if not path.is_file():
            raise BadInput(f"bad ref {text!r}: no such prompt file")
        return Ref(name=None, path=path)
    name, _, rest = text.partition("@")
    if not NAME_RE.match(name):
        raise BadInput(f"bad ref {text!r}: prompt names match {NAME_RE.pattern}")
    if not rest and "@" not in text:
        return Ref(name=name, label="latest")
    if VERSION_LIKE.match(rest):
        return Ref(name=name, version=int(rest[1:]))
    if LABEL_RE.match(rest):
        return Ref(name=name, label=rest)
    raise BadInput(f"bad ref {text!r}: expected NAME, NAME@vN or NAME@LABEL")
