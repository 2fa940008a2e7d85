"""files.write_atomically and check_writable: a file is written whole or left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptgate.errors import BadInput
from promptgate.files import check_writable, write_atomically


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old report\n")

    def half_then_fail(fh: object) -> None:
        fh.write("new rep")  # type: ignore[attr-defined]
        raise RuntimeError("disk gave up")

    with pytest.raises(RuntimeError, match="disk gave up"):
        write_atomically(target, half_then_fail)
    assert target.read_text() == "old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_write_replaces_the_file_whole_and_makes_its_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.md"
    write_atomically(target, lambda fh: fh.write("first\n"))
    write_atomically(target, lambda fh: fh.write("second\n"))
    assert target.read_text() == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]


def test_check_writable_refuses_what_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    check_writable(tmp_path / "new" / "deeper" / "r.json", "--report-json")  # folders to make
    check_writable(tmp_path / "file.txt", "--report-json")  # an existing file is replaced
    with pytest.raises(BadInput, match="is a directory"):
        check_writable(tmp_path, "--report-json")
    with pytest.raises(BadInput, match="is not a directory"):
        check_writable(tmp_path / "file.txt" / "r.json", "--junit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # nothing was created
