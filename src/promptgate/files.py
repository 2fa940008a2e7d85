"""Files promptgate writes for people and other tools (reports, the lock file, recordings): each
is written whole or not at all, and a path that cannot be written is refused before any work is
done.

A path that names a symlink is written through it (the link stays a link). One that names a
pipe or a device (`/dev/stdout`, `/dev/null`), or a file in a folder we may not create files
in, is written in place, as `open(path, "w")` would: there is no temporary file to rename there.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .errors import BadInput


def check_writable(path: Path, what: str) -> None:
    """BadInput (`what` names the flag or command) unless `path` could be written now. Nothing
    is created; the folders it lacks are made when it is written."""
    mode = _mode(path)
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise BadInput(f"{what} {path}: is a directory")
        if not os.access(path, os.W_OK):
            raise BadInput(f"{what} {path}: is not writable")
        return
    ancestor = path.parent  # named as the user named it
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():  # a file, or a link to nothing
        raise BadInput(f"{what} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInput(f"{what} {path}: cannot write in {ancestor}")


def write_atomically(path: Path, write: Callable[[TextIO], object]) -> None:
    """Let `write` fill the file at `path` (through a symlink, if it is one): into a temporary
    file beside it, renamed over it when `write` has finished, so that a reader sees the old file
    or the whole new one, never a part. An existing file keeps its permissions. The folders it
    lacks are made. A pipe, a device, or a file in a folder that cannot take the temporary file
    is written in place instead. On any failure the temporary file is removed and the error (an
    OSError, or what `write` raised) propagates, with `path` untouched."""
    mode = _mode(path)
    if mode is not None and not stat.S_ISREG(mode):  # /dev/stdout, /dev/null, a named pipe
        _write_in_place(path, write)
        return
    target = Path(os.path.realpath(path))  # a regular file's real name: the link stays a link
    if mode is not None and not os.access(target.parent, os.W_OK | os.X_OK):
        _write_in_place(target, write)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".promptgate-{uuid.uuid4().hex}.tmp")  # short: any name fits
    try:
        with open(tmp, "x", encoding="utf-8") as fh:  # the umask's permissions, as any file
            write(fh)
        if mode is not None:
            os.chmod(tmp, stat.S_IMODE(mode))
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_output(path: Path, what: str, write: Callable[[TextIO], object]) -> None:
    """write_atomically for a file the user asked for by `what` (a flag or a command): an
    OSError becomes one line, `what PATH: cannot write: REASON` (BadInput, exit 2)."""
    try:
        write_atomically(path, write)
    except OSError as exc:
        raise BadInput(f"{what} {path}: cannot write: {exc.strerror or exc}") from None


def _mode(path: Path) -> int | None:
    """`st_mode` of what `path` leads to (links followed), None if nothing is there."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_in_place(path: Path, write: Callable[[TextIO], object]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        write(fh)
