"""The command line: one-line errors, non-zero exits, no tracebacks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from organizer.cli import main

from .conftest import REPO, photos_dir


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "organizer.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, code, words", [
    ([], 2, "usage"),
    (["frobnicate"], 2, "invalid choice"),
    (["scan"], 2, "the following arguments are required: photo_dir"),
    (["scan", ".", "--workers", "zero"], 2, "is not a whole number"),
    (["scan", ".", "--workers", "0"], 2, "must be 1 or more"),
    (["scan", ".", "--model", "magic"], 2, "invalid choice"),
    (["scan", ".", "--upsample", "-1"], 2, "must be 0 or more"),
    (["stats", "--nope"], 2, "unrecognized arguments"),
])
def test_bad_arguments_exit_2_with_one_line(args: list[str], code: int, words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == code
    err = capsys.readouterr().err
    if args:
        assert err.count("\n") == 1 and words in err and "Traceback" not in err


def test_missing_folder_and_broken_database_are_one_line_errors(tmp_path: Path) -> None:
    done = run_cli("scan", str(tmp_path / "nope"), "--db", str(tmp_path / "lib.db"))
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr

    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    done = run_cli("stats", "--db", str(broken))
    assert done.returncode == 1 and "cannot open the library" in done.stderr
    assert "Traceback" not in done.stderr and broken.read_bytes().startswith(b"this is not a database")

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    done = run_cli("scan", str(a_file), "--db", str(tmp_path / "lib.db"))
    assert done.returncode == 1 and "is not a folder" in done.stderr


def test_scan_and_stats_end_to_end(tmp_path: Path) -> None:
    folder = photos_dir("people-small/train")
    db = tmp_path / "lib.db"
    done = run_cli("scan", str(folder), "--db", str(db), "-q")
    assert done.returncode == 0, done.stderr
    assert "9 new" in done.stdout and "9 faces found" in done.stdout
    stats = run_cli("stats", "--db", str(db), "--failed")
    assert stats.returncode == 0
    assert "photos:   9 (9 ok, 0 failed, 0 missing)" in stats.stdout and "failed photos (0)" in stats.stdout
