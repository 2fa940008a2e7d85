"""files.write_atomically and check_writable: a file is written whole or left as it was."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from promptgate.errors import BadInput
from promptgate.files import check_writable, write_atomically, write_output


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


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "report.json"
    target.write_text("old\n")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    check_writable(link, "--report-json")
    write_atomically(link, lambda fh: fh.write("new\n"))
    assert link.is_symlink() and target.read_text() == "new\n"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["report.json"]


def test_a_pipe_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so that opening it to write succeeds
    try:
        check_writable(fifo, "--junit")
        write_atomically(fifo, lambda fh: fh.write("<testsuites/>\n"))
        assert os.read(reader, 100) == b"<testsuites/>\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still the pipe, not a file put in its place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_an_existing_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "private.json"
    target.write_text("old\n")
    target.chmod(0o600)
    write_atomically(target, lambda fh: fh.write("new\n"))
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_link_to_nothing_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(BadInput, match="dangling is not a directory"):
        check_writable(tmp_path / "dangling" / "r.json", "--report-json")


def test_a_long_file_name_leaves_room_for_the_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / ("r" * 250 + ".json")  # 255 bytes, the longest name most systems take
    write_atomically(target, lambda fh: fh.write("ok\n"))
    assert target.read_text() == "ok\n"


def test_a_failed_output_write_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(BadInput) as refused:
        write_output(tmp_path / "file.txt" / "r.json", "--report-json", lambda fh: fh.write("{}"))
    message = str(refused.value)
    assert message.startswith(f"--report-json {tmp_path}/file.txt/r.json: cannot write: ")
    assert "\n" not in message and (tmp_path / "file.txt").read_text() == "x"
