"""Faults: kill -9 of the scanner at many points, a full disk, a read-only library, a
library locked by another program, and the photo folder disappearing mid-scan. The
promise each time: a clear one-line message and nothing half-written or forgotten."""
from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from organizer import cli
from organizer import db as db_mod
from organizer import scanner as scanner_mod
from organizer.db import Library
from organizer.errors import LibraryError, PhotoRootError
from organizer.labelling import assign_faces
from organizer.models import Face, Person, Photo, PhotoStatus
from organizer.scanner import ScanProgress, scan

from . import hardening_tools as ht
from .conftest import REPO, copy_db, db_url, face_count, photos_dir, settings_for

KILL_POINTS = 22


def test_kill9_at_many_points_then_resume_equals_a_clean_scan(lfw_root: Path, lfw_db: Path, tmp_path: Path) -> None:
    n = sum(1 for _ in lfw_root.rglob("*.jpg"))
    expected = ht.face_keys(lfw_db)  # the clean scan of the same folder (conftest)
    assert sum(expected.values()) >= n * 0.9
    db = tmp_path / "killed.db"
    points = ht.plan_kill_points(n, KILL_POINTS)
    campaign = ht.run_kill_campaign(lfw_root, db, points, n)
    done = ht.finish_scan(lfw_root, db)
    assert done.returncode == 0, done.stderr
    print(f"\nkill -9 campaign: {campaign.kills} kills over {n} photos in {campaign.seconds:.0f}s; "
          f"stages {dict(campaign.stages)}; committed photos at each kill {campaign.committed_at_kill}; "
          f"{len(campaign.labels_made)} labels made between kills")
    assert campaign.kills >= 20, f"only {campaign.kills} kills landed ({campaign.finished_before_kill} scans finished first)"
    assert len(set(campaign.committed_at_kill)) >= 10, "the kills should land at many different points"
    assert campaign.stages["mid-scan"] >= 10 and len(campaign.labels_made) >= 10
    assert ht.check_after_kills(db, expected, campaign, n) == []


# --- disk full ---------------------------------------------------------------------------

def _fingerprint(db: Path) -> tuple:
    return (ht.committed_photos(db), sum(ht.face_keys(db).values()), ht.labels(db))


def test_disk_full_mid_scan_stops_cleanly_and_keeps_whole_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "photos"
    shutil.copytree(photos_dir("people-small/train"), root)
    db = tmp_path / "lib.db"
    real_make_engine = db_mod.make_engine
    inserts = {"photos": 0}

    def disk_fills_on_the_fifth_photo(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO PHOTOS"):
            inserts["photos"] += 1
            if inserts["photos"] >= 5:  # the first photo of the third batch
                raise sqlite3.OperationalError("database or disk is full")

    def make_engine(url: str):  # type: ignore[no-untyped-def]
        engine = real_make_engine(url)
        event.listen(engine, "before_cursor_execute", disk_fills_on_the_fifth_photo)
        return engine

    monkeypatch.setattr(db_mod, "make_engine", make_engine)
    # batches by count only: the scanner also commits after COMMIT_INTERVAL_S seconds,
    # which on a loaded machine split the batches differently (3 photos, not 4)
    monkeypatch.setattr(scanner_mod, "COMMIT_INTERVAL_S", math.inf)
    batches: list[list[str]] = []
    real_commit = scanner_mod.commit_results

    def commit_and_note(library, batch, detector, report):  # type: ignore[no-untyped-def]
        real_commit(library, batch, detector, report)
        batches.append([res.rel for res, _ in batch])  # reached only when the batch committed

    monkeypatch.setattr(scanner_mod, "commit_results", commit_and_note)
    monkeypatch.setenv("ORGANIZER_BATCH_SIZE", "2")
    monkeypatch.setenv("ORGANIZER_WORKERS", "1")
    code = cli.main(["scan", str(root), "--db", str(db), "-q"])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.count("\n") == 0 and "Traceback" not in err and "full" in err, err
    # whole batches only: 2 batches of 2 photos, nothing of the third
    lib = Library.open(db_url(db))
    with lib.session() as s:
        paths = list(s.scalars(select(Photo.path)))
        assert len(paths) == 4
        assert s.scalar(select(func.count()).select_from(Face)) == 4
    assert [len(b) for b in batches] == [2, 2] and sorted(paths) == sorted(p for b in batches for p in b)
    assert ht.healthy(db)
    # space is back: the next scan carries on
    monkeypatch.setattr(db_mod, "make_engine", real_make_engine)
    assert cli.main(["scan", str(root), "--db", str(db), "-q"]) == 0
    assert face_count(lib) == 9


def test_disk_full_during_a_labelling_action_changes_nothing(people_small_lib: Library,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    db = Path(people_small_lib.engine.url.database)
    before = _fingerprint(db)
    with people_small_lib.session() as s:
        ids = list(s.scalars(select(Face.id)))[:3]
    def full(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO OPERATIONS"):
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Library, "open", classmethod(lambda cls, url, **kw: people_small_lib))
    event.listen(people_small_lib.engine, "before_cursor_execute", full)
    try:
        code = cli.main(["assign", *map(str, ids), "--to", "Somebody", "--db", str(db)])
    finally:
        event.remove(people_small_lib.engine, "before_cursor_execute", full)
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and "Traceback" not in err and "full" in err, err
    assert _fingerprint(db) == before
    with people_small_lib.session() as s:
        assert s.scalar(select(Person).where(Person.name == "Somebody")) is None


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_real_disk_full_on_a_tiny_filesystem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real write failure from the kernel, without root or a loop device: RLIMIT_FSIZE
    makes the kernel refuse to grow any file of the scanning process past a limit (EFBIG,
    with SIGXFSZ ignored), which SQLite reports like a failing or full disk."""
    root = tmp_path / "photos"
    shutil.copytree(photos_dir("people-small/train"), root)
    db = tmp_path / "lib.db"
    # create the library and scan a first part, then cap file sizes just above it
    first = tmp_path / "first"
    first.mkdir()
    for p in _files(root)[:3]:
        (first / p.parent.name).mkdir(exist_ok=True)
        shutil.copy2(p, first / p.parent.name / p.name)
    code = subprocess.run([sys.executable, "-m", "organizer.cli", "scan", str(first), "--db", str(db), "-q"],
                          check=False, cwd=REPO, capture_output=True, text=True, env={**os.environ, "ORGANIZER_WORKERS": "1"})
    assert code.returncode == 0, code.stderr
    before = _fingerprint(db)
    # the log starts empty after a clean close; let it grow by a few pages only
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    # the log may reach 40 KB: room for the scan's bookkeeping, not for a batch of photos
    # with their thumbnails (writes inside the existing, bigger library file still work)
    size = 40 * 1024
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size}, {size}))\n"
        "from organizer.cli import main\n"
        f"sys.exit(main(['scan', {str(first)!r}, '--db', {str(db)!r}, '-q']))\n"
    )
    # new files for the library to take in: the rest of the set
    for p in _files(root)[3:]:
        (first / p.parent.name).mkdir(exist_ok=True)
        shutil.copy2(p, first / p.parent.name / p.name)
    proc = subprocess.run([sys.executable, "-c", script], check=False, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "ORGANIZER_WORKERS": "1", "ORGANIZER_BATCH_SIZE": "50"})
    err = proc.stderr.strip()
    assert proc.returncode != 0, (proc.stdout, err)
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert "full" in err or "too large" in err, err
    print(f"\nreal disk-full message: {err}")
    # whatever was committed before the disk filled is whole (every face with its
    # thumbnail, no half-written photo), and the labels are untouched
    assert ht.healthy(db) and _fingerprint(db)[2] == before[2]
    assert before[0] <= ht.committed_photos(db) < 9
    # room again: the same command finishes the job
    done = subprocess.run([sys.executable, "-m", "organizer.cli", "scan", str(first), "--db", str(db), "-q"],
                          check=False, cwd=REPO, capture_output=True, text=True, env={**os.environ, "ORGANIZER_WORKERS": "1"})
    assert done.returncode == 0, done.stderr
    assert ht.committed_photos(db) == 9 and sum(ht.face_keys(db).values()) == 9 and ht.healthy(db)


# --- read-only library, locked library ------------------------------------------------------

def _cli(*argv: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "organizer.cli", *argv], check=False, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "ORGANIZER_WORKERS": "1", **(env or {})})


def test_read_only_library_file(people_small_db: Path, tmp_path: Path) -> None:
    """A library on read-only media (an immutable file: even root cannot write it through
    SQLite's read-only open), reached with a file: URL."""
    db = copy_db(people_small_db, tmp_path / "ro.db")
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA journal_mode=DELETE")  # a library copied to a DVD/SD card has no -wal
    before = _fingerprint(db)
    url = f"sqlite:///file:{db}?mode=ro&uri=true"
    photos = photos_dir("people-small/train")  # the library's own folder
    for argv in (["scan", str(photos)], ["assign", "1", "--to", "Someone"], ["forget", "--all-faces", "--yes"]):
        proc = _cli(*argv, "--db", url)
        err = proc.stderr.strip()
        assert proc.returncode == 1, (argv, proc.stdout, err)
        assert err.count("\n") == 0 and "Traceback" not in err and "read-only" in err, (argv, err)
    assert _fingerprint(db) == before
    # reading still works
    ok = _cli("stats", "--db", url)
    assert ok.returncode == 0 and "faces:    9" in ok.stdout, ok.stderr


def test_locked_library_waits_then_gives_a_clear_message(people_small_db: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Another program holds a write lock for longer than the busy timeout (shortened
    here from 60 s to 1 s)."""
    db = copy_db(people_small_db, tmp_path / "locked.db")
    monkeypatch.setattr("organizer.db.BUSY_TIMEOUT_S", 1)
    lib = Library.open(db_url(db))
    with lib.session() as s:
        face_id = s.scalar(select(Face.id))
    before = _fingerprint(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE library_meta SET value = value")
    try:
        t0 = time.monotonic()
        with pytest.raises(LibraryError) as info:
            assign_faces(lib, [face_id], "Someone")
        waited = time.monotonic() - t0
        assert "locked by another program" in str(info.value) and "\n" not in str(info.value)
        assert waited >= 0.9  # it waited for the other writer before giving up
        # the command line, from opening the library on: one line, exit 1
        for argv in (["assign", str(face_id), "--to", "Someone"], ["scan", str(photos_dir("people-small/train"))],
                     ["forget", "--all-faces", "--yes"]):
            assert cli.main([*argv, "--db", str(db)]) == 1, argv
            err = capsys.readouterr().err.strip()
            assert "locked" in err and err.count("\n") == 0 and "Traceback" not in err, err
    finally:
        holder.rollback()
        holder.close()
    assert _fingerprint(db) == before
    # the lock released: the same action goes through
    assign_faces(lib, [face_id], "Someone")
    assert list(ht.labels(db).values()) == [("Someone", "confirmed")]


def test_locked_library_short_lock_is_waited_out(people_small_db: Path, tmp_path: Path) -> None:
    """A lock held for a few seconds (another scan committing) is simply waited for."""
    db = copy_db(people_small_db, tmp_path / "busy.db")
    lib = Library.open(db_url(db))
    with lib.session() as s:
        face_id = s.scalar(select(Face.id))
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(2.0, holder.rollback)
    release.start()
    try:
        assign_faces(lib, [face_id], "Someone")
    finally:
        release.join()
        holder.close()
    assert list(ht.labels(db).values()) == [("Someone", "confirmed")]


# --- the photo folder disappears --------------------------------------------------------

def test_photo_root_unplugged_mid_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "photos"
    shutil.copytree(photos_dir("people-small/train"), root)
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    scan(lib, root, settings_for(db, workers=1))
    labelled = ht.labels(db)
    assert not labelled
    with lib.session() as s:
        face_id = s.scalar(select(Face.id))
    assign_faces(lib, [face_id], "Kept")
    labelled = ht.labels(db)
    # new photos arrive, and the disk is unplugged while they are being read
    extra = photos_dir("people-small/test")
    for p in sorted(extra.glob("*.jpg")):
        shutil.copy2(p, root / f"new_{p.name}")
    away = tmp_path / "unplugged"

    def unplug(p: ScanProgress) -> None:
        if p.done == 2 and root.exists():
            root.rename(away)

    with pytest.raises(PhotoRootError) as info:
        scan(lib, root, settings_for(db, workers=1, batch_size=1), unplug)
    assert "disappeared" in str(info.value) and "\n" not in str(info.value)
    with lib.session() as s:
        assert s.scalar(select(func.count()).select_from(Photo).where(Photo.status != PhotoStatus.ok)) == 0
        assert s.scalar(select(func.count()).select_from(Photo)) == 9 + 2  # two new ones made it
    assert ht.labels(db) == labelled and face_count(lib) >= 9
    # plugged back in: the scan carries on, nothing was lost
    away.rename(root)
    report = scan(lib, root, settings_for(db, workers=1))
    assert report.failed == 0 and report.removed == 0 and report.new == 3
    assert ht.labels(db) == labelled

    # through the CLI, and this time the mount point stays behind, empty: one line, exit 1
    for p in sorted(extra.glob("*.jpg")):
        shutil.copy2(p, root / f"newer_{p.name}")
    calls = {"n": 0}
    real = scanner_mod.analyse_file
    away.mkdir()

    def analyse_then_unplug(*a, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            for child in list(root.iterdir()):
                child.rename(away / child.name)
        return real(*a, **kw)

    monkeypatch.setattr(scanner_mod, "analyse_file", analyse_then_unplug)
    code = cli.main(["scan", str(root), "--db", str(db), "--workers", "1", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and "disappeared" in err, err
    assert ht.labels(db) == labelled
    with lib.session() as s:
        assert s.scalar(select(func.count()).select_from(Photo).where(Photo.status != PhotoStatus.ok)) == 0
        assert s.scalar(select(func.count()).select_from(Photo)) == 9 + 5 + 1

    # plugged back; one new photo is deleted by the user while the scan reads it: that is
    # not a bad file, and nothing else is touched
    for child in list(away.iterdir()):
        child.rename(root / child.name)
    calls["n"] = 0
    victim = max(root.glob("newer_*.jpg"))

    def analyse_after_delete(*a, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            victim.unlink()
        return real(*a, **kw)

    monkeypatch.setattr(scanner_mod, "analyse_file", analyse_after_delete)
    report = scan(lib, root, settings_for(db, workers=1))
    assert report.failed == 0 and report.errors == []
    assert ht.labels(db) == labelled
