"""Atomic writes: a result file is either the old one or the whole new one, never half of either."""

from pathlib import Path

import pytest

from s2t_live.errors import OutputError
from s2t_live.export import atomic_open, write_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = write_atomic(tmp_path / "out.srt", "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("half of the new")
            raise RuntimeError("the writer failed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.srt"]
    with atomic_open(target, "wb", sync=False) as f:
        f.write(b"new\n")
    assert target.read_bytes() == b"new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.srt"]


def test_a_folder_that_cannot_hold_the_file_is_one_output_error(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where a folder should be")
    with pytest.raises(OutputError, match="cannot write"):
        write_atomic(tmp_path / "blocked" / "out.txt", b"data")
