"""Files promptgate writes for people and other tools (reports, the lock file): each is written
whole or not at all, and a path that cannot be written is refused before any work is done."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .errors import BadInput


def check_writable(path: Path, what: str) -> None:
    """BadInput (`what` names the flag or file) unless `path` could be written now: it is not a
    directory, and its nearest existing ancestor is a directory we may create files in. Nothing
    is created; the folders it lacks are made when it is written."""
    if path.is_dir():
        raise BadInput(f"{what} {path}: is a directory")
    ancestor = path.parent
    while not ancestor.exists():
        if ancestor == ancestor.parent:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInput(f"{what} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInput(f"{what} {path}: cannot write in {ancestor}")


def write_atomically(path: Path, write: Callable[[TextIO], object]) -> None:
    """Make the folders `path` lacks, let `write` fill a temporary file beside it, then rename
    that over `path`: a reader sees the old file or the whole new one, never a part. On any
    failure the temporary file is removed and the error (an OSError, or what `write` raised)
    propagates; `path` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:  # the umask's permissions, as any file
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
