"""Scanner hardening (issue 11): folders that cannot be listed, an unplugged library
disk next to another folder, identical copies of a labelled photo, links out of the
photo folder, pipes and devices swapped in after listing, stuck files, and names that
are not UTF-8. Each test runs real scans on real photos and real library files."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from organizer import cli
from organizer import faces as face_api
from organizer import scanner as scanner_mod
from organizer.db import Library
from organizer.errors import PhotoRootError
from organizer.labelling import assign_faces, mark_not_face, remove_faces
from organizer.models import Face, Photo, PhotoStatus
from organizer.scanner import ScanReport, scan

from . import hardening_tools as ht
from .conftest import REPO, copy_db, db_url, photos_dir, settings_for

TRAIN = "people-small/train"
NOBODY = 65534


def _library_copy(people_small_db: Path, base: Path) -> tuple[Library, Path, Path]:
    """people-small/train copied to ``base/photos`` with its scanned library re-pointed
    there (``--new-root``: relative paths carry over, nothing is decoded)."""
    root = base / "photos"
    shutil.copytree(photos_dir(TRAIN), root)
    db = copy_db(people_small_db, base / "lib.db")
    lib = Library.open(db_url(db))
    report = scan(lib, root, settings_for(db, workers=1), new_root=True)
    assert (report.unchanged, report.new, report.removed) == (9, 0, 0)
    return lib, root, db


def _scan(lib: Library, root: Path, db: Path, **kw: object) -> ScanReport:
    return scan(lib, root, settings_for(db, **{"workers": 1, **kw}))


def _face_id(lib: Library, path: str) -> int:
    with lib.session() as s:
        face_id = s.scalar(select(Face.id).join(Photo).where(Photo.path == path))
    assert face_id is not None, path
    return face_id


def _answers(db: Path) -> dict[str, tuple]:
    """Every photo's user data: (status, [(person, assignment, is_face, rejected people)])."""
    with sqlite3.connect(db) as c:
        photos = dict(c.execute("SELECT id, path FROM photos"))
        status = dict(c.execute("SELECT path, status FROM photos"))
        out: dict[str, list] = {p: [] for p in photos.values()}
        for fid, pid, name, assignment, is_face in c.execute(
                "SELECT f.id, f.photo_id, pe.name, f.assignment, f.is_face FROM faces f "
                "LEFT JOIN people pe ON pe.id = f.person_id ORDER BY f.id"):
            rejected = sorted(r[0] for r in c.execute(
                "SELECT pe.name FROM face_rejections r JOIN people pe ON pe.id = r.person_id WHERE r.face_id = ?", (fid,)))
            out[photos[pid]].append((name, assignment, bool(is_face), rejected))
    return {p: (status[p], faces) for p, faces in out.items()}


def _give_answers(lib: Library) -> None:
    """The kinds of answers an unreadable folder used to lose: "not this person" on an
    unconfirmed face, "not a face", and a confirmed name."""
    remove_id = _face_id(lib, "obama/obama2.jpg")
    assign_faces(lib, [remove_id], "Somebody Else")
    remove_faces(lib, [remove_id])                      # obama2: "not Somebody Else"
    mark_not_face(lib, [_face_id(lib, "obama/obama.jpg")])
    assign_faces(lib, [_face_id(lib, "deep/kit_harington/john1.jpeg")], "Kit")


# --- 2: a folder that cannot be listed keeps its photos -------------------------------------

def test_unreadable_folders_keep_their_photos_and_answers(people_small_db: Path, tmp_path: Path) -> None:
    """Real permissions: ``chmod 000 obama`` (cannot be listed) and ``chmod a-x deep``
    (listed, but nothing in it can be looked at, so its sub-folder cannot be entered).
    Root reads everything, so as root the scan runs as the user nobody."""
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="organizer-unreadable-")) if as_root else tmp_path
    try:
        lib, root, db = _library_copy(people_small_db, base)
        (root / "deep").mkdir()
        shutil.move(root / "kit_harington", root / "deep" / "kit_harington")
        assert _scan(lib, root, db).moved == 2
        _give_answers(lib)
        (root / "biden" / "biden2.jpg").unlink()          # really deleted: still forgotten
        before = _answers(db)
        lib.close()
        if as_root:
            for p in [base, *base.rglob("*")]:
                p.chmod(0o777 if p.is_dir() else 0o666)
        (root / "obama").chmod(0)
        (root / "deep").chmod(0o644)
        try:
            cmd = [sys.executable, "-m", "organizer.cli", "scan", str(root), "--db", str(db), "--workers", "1", "--no-cluster"]
            try:
                done = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
                                      env={**os.environ, "HOME": str(base)},
                                      **({"user": NOBODY, "group": NOBODY} if as_root else {}))  # type: ignore[call-overload]
            except (PermissionError, OSError) as exc:
                pytest.skip(f"cannot run a process as the user nobody here ({exc})")
        finally:
            (root / "obama").chmod(0o755)
            (root / "deep").chmod(0o755)
        print(f"\nscan with two unreadable folders: {done.stdout}")
        assert done.returncode == 0, done.stderr
        assert "1 removed" in done.stdout and "0 new" in done.stdout
        assert "4 photos kept in folders that could not be read" in done.stdout
        assert "obama: folder cannot be read: Permission denied" in done.stdout
        assert "deep/kit_harington: cannot be looked at: Permission denied" in done.stdout
        after = _answers(db)
        del before["biden/biden2.jpg"]
        assert after == before
        # readable again: everything is where it was, nothing is redone
        lib = Library.open(db_url(db))
        again = _scan(lib, root, db)
        assert (again.unchanged, again.removed, again.new, again.unreadable_kept) == (8, 0, 0, 0)
        assert _answers(db) == before
    finally:
        if as_root:
            shutil.rmtree(base, ignore_errors=True)


def test_a_failed_listing_at_any_depth_protects_what_is_known_under_it(
        people_small_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listings that fail in other ways: an I/O error on a nested folder, on the photo
    folder itself, and a folder link whose disk is unplugged (a dangling link)."""
    lib, root, db = _library_copy(people_small_db, tmp_path)
    (root / "2019" / "summer").mkdir(parents=True)
    shutil.move(root / "biden", root / "2019" / "summer" / "biden")
    disk2 = tmp_path / "disk2"
    disk2.mkdir()
    shutil.move(root / "rose_leslie", disk2 / "rose_leslie")
    (root / "rose_leslie").symlink_to(disk2 / "rose_leslie", target_is_directory=True)
    assert _scan(lib, root, db).moved == 2
    _give_answers_flat(lib)
    before = _answers(db)
    real_scandir = os.scandir
    failing: set[Path] = set()

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path).resolve() in failing:
            raise OSError(errno.EIO, "Input/output error")
        return real_scandir(path)

    monkeypatch.setattr(scanner_mod.os, "scandir", scandir)
    failing.add((root / "2019" / "summer").resolve())
    disk2.rename(tmp_path / "unplugged")
    report = _scan(lib, root, db)
    assert (report.removed, report.kept_missing, report.unreadable_kept) == (0, 0, 4), report
    assert ("2019/summer", "folder cannot be read: Input/output error") in report.errors
    assert ("rose_leslie", "broken symbolic link") in report.errors
    assert _answers(db) == before
    # the photo folder itself cannot be listed
    failing.add(root.resolve())
    report = _scan(lib, root, db)
    assert (report.removed, report.unreadable_kept) == (0, 9) and (".", "folder cannot be read: Input/output error") in report.errors
    assert _answers(db) == before
    # a dangling link that protects nothing is not reported
    failing.clear()
    (tmp_path / "unplugged").rename(disk2)
    (root / "notes").symlink_to(tmp_path / "nowhere")
    report = _scan(lib, root, db)
    assert report.errors == [] and report.unchanged == 9 and _answers(db) == before


def _give_answers_flat(lib: Library) -> None:
    face = _face_id(lib, "2019/summer/biden/biden.jpg")
    assign_faces(lib, [face], "Somebody Else")
    remove_faces(lib, [face])
    mark_not_face(lib, [_face_id(lib, "rose_leslie/img2.jpg")])
    assign_faces(lib, [_face_id(lib, "rose_leslie/img1.jpg")], "Rose")


# --- 3: an unplugged library disk is not a move -------------------------------------------

def test_scan_of_another_folder_while_the_old_one_is_missing_is_refused(
        people_small_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib, root, db = _library_copy(people_small_db, tmp_path)
    assign_faces(lib, [_face_id(lib, "biden/biden.jpg")], "Joe")
    before = _answers(db)
    other = tmp_path / "other"
    shutil.copytree(photos_dir("people-small/test"), other)
    unplugged = tmp_path / "unplugged"
    root.rename(unplugged)
    with pytest.raises(PhotoRootError, match="--new-root") as info:
        _scan(lib, other, db)
    assert "not there now" in str(info.value) and "\n" not in str(info.value)
    assert lib.root == root.resolve() and _answers(db) == before
    assert cli.main(["scan", str(other), "--db", str(db), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--new-root" in err and "Traceback" not in err, err
    # --new-root to a folder that holds none of the library's photos is a mistake, not a move
    with pytest.raises(PhotoRootError, match="none of the library's 9 photos"):
        scan(lib, other, settings_for(db, workers=1), new_root=True)
    assert lib.root == root.resolve() and _answers(db) == before
    # plugged back in: scanned as before
    unplugged.rename(root)
    assert _scan(lib, root, db).unchanged == 9
    # --new-root where the photos really moved works, with the old folder missing or present
    newdisk = tmp_path / "newdisk"
    shutil.copytree(root, newdisk)
    report = scan(lib, newdisk, settings_for(db, workers=1), new_root=True)
    assert (report.unchanged, report.removed) == (9, 0) and lib.root == newdisk.resolve()
    shutil.rmtree(root)
    shutil.move(newdisk, root)
    report = scan(lib, root, settings_for(db, workers=1), new_root=True)
    assert (report.unchanged, report.removed) == (9, 0) and lib.root == root.resolve()
    assert _answers(db) == before


# --- 4: identical copies ---------------------------------------------------------------

def test_labels_of_identical_copies_stay_on_real_files(people_small_db: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lib, root, db = _library_copy(people_small_db, tmp_path)
    (root / "dups").mkdir()
    shutil.copy2(root / "obama" / "obama.jpg", root / "dups" / "obama_copy.jpg")
    shutil.copy2(root / "biden" / "biden.jpg", root / "dups" / "biden_copy.jpg")
    shutil.copy2(root / "kit_harington" / "john1.jpeg", root / "kit_harington" / "john1_dup.jpeg")
    assert _scan(lib, root, db).new == 3
    assign_faces(lib, [_face_id(lib, "obama/obama.jpg")], "Barack")
    assign_faces(lib, [_face_id(lib, "biden/biden.jpg")], "Joe")
    assign_faces(lib, [_face_id(lib, "kit_harington/john1.jpeg")], "Kit")
    assign_faces(lib, [_face_id(lib, "kit_harington/john1_dup.jpeg")], "Jon")
    # the labelled file renamed, its unlabelled copy deleted
    (root / "obama" / "obama.jpg").rename(root / "obama" / "obama_b.jpg")
    (root / "dups" / "obama_copy.jpg").unlink()
    # the labelled file deleted, its unlabelled copy kept
    (root / "biden" / "biden.jpg").unlink()
    # two labelled copies both renamed: each label follows the name most like its own
    (root / "kit_harington" / "john1.jpeg").rename(root / "kit_harington" / "john1 (1).jpeg")
    (root / "kit_harington" / "john1_dup.jpeg").rename(root / "kit_harington" / "john1_dup (1).jpeg")
    monkeypatch.setattr(scanner_mod, "analyse_file", lambda *a, **k: pytest.fail("a moved photo was decoded"))
    report = _scan(lib, root, db)
    assert report.kept_missing == 0 and report.moved == 4 and report.new == 0, report
    answers = _answers(db)
    assert answers["obama/obama_b.jpg"] == ("ok", [("Barack", "confirmed", True, [])])
    assert answers["dups/biden_copy.jpg"] == ("ok", [("Joe", "confirmed", True, [])])
    assert answers["kit_harington/john1 (1).jpeg"] == ("ok", [("Kit", "confirmed", True, [])])
    assert answers["kit_harington/john1_dup (1).jpeg"] == ("ok", [("Jon", "confirmed", True, [])])
    assert len(answers) == 10 and all(status == "ok" for status, _ in answers.values())
    assert ht.healthy(db)


# --- 10: links out of the photo folder -------------------------------------------------------

def test_file_links_are_followed_only_inside_the_photo_folder(tmp_path: Path) -> None:
    train = photos_dir(TRAIN)
    root, outside, linked = tmp_path / "photos", tmp_path / "outside", tmp_path / "linked_folder"
    for d in (root / "inside", outside, linked):
        d.mkdir(parents=True)
    shutil.copy2(train / "obama" / "obama.jpg", root / "inside" / "a.jpg")
    shutil.copy2(train / "biden" / "biden.jpg", outside / "secret.jpg")
    shutil.copy2(train / "rose_leslie" / "img1.jpg", linked / "c.jpg")
    (root / "link_in.jpg").symlink_to("inside/a.jpg")
    (root / "link_out.jpg").symlink_to(outside / "secret.jpg")
    (root / "sub").mkdir()
    (root / "sub" / "up_and_out.jpg").symlink_to("../../outside/secret.jpg")
    # a file link into a folder reached through a folder link, seen before that folder is walked
    (root / "aa_via_folder_link.jpg").symlink_to(linked / "c.jpg")
    (root / "zz_folder").symlink_to(linked, target_is_directory=True)
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    report = _scan(lib, root, db)
    with lib.session() as s:
        rows = {p.path: (p.status, p.error) for p in s.scalars(select(Photo))}
    outside_error = (PhotoStatus.error, "symbolic link to a file outside the photo folder: not followed")
    assert rows == {
        "inside/a.jpg": (PhotoStatus.ok, None), "link_in.jpg": (PhotoStatus.ok, None),
        "zz_folder/c.jpg": (PhotoStatus.ok, None), "aa_via_folder_link.jpg": (PhotoStatus.ok, None),
        "link_out.jpg": outside_error, "sub/up_and_out.jpg": outside_error,
    }, rows
    assert report.failed == 2
    # a link re-pointed outside after the scan is refused at the next one
    (root / "link_in.jpg").unlink()
    (root / "link_in.jpg").symlink_to(outside / "secret.jpg")
    _scan(lib, root, db)
    with lib.session() as s:
        photo = s.scalar(select(Photo).where(Photo.path == "link_in.jpg"))
        assert photo is not None and (photo.status, photo.error) == outside_error
        assert s.scalar(select(func.count()).select_from(Face).where(Face.photo_id == photo.id)) == 1  # its face is kept


# --- 12: pipes, devices and stuck files -----------------------------------------------------

SWAP_SCRIPT = """
import json, os, sys
from pathlib import Path
from organizer import scanner
from organizer.config import Settings
from organizer.db import Library

root, db, workers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
real = scanner.list_files

def listed_then_swapped(r):
    yield from real(r)
    # after the listing, before any file is read
    for name in ("obama/obama.jpg", "new_fifo.jpg", "biden/new_fifo.jpg"):
        os.unlink(r / name)
        os.mkfifo(r / name)
    os.unlink(r / "new_zero.jpg")
    os.symlink("/dev/zero", r / "new_zero.jpg")

scanner.list_files = listed_then_swapped
settings = Settings(db_url="sqlite:///" + db).with_overrides(workers=workers)
report = scanner.scan(Library.open(settings.db_url), root, settings)
print(json.dumps({"errors": sorted(report.errors), "removed": report.removed, "unchanged": report.unchanged}))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_pipe_or_device_swapped_in_after_listing_does_not_hang(people_small_db: Path, tmp_path: Path,
                                                                workers: int) -> None:
    lib, root, db = _library_copy(people_small_db, tmp_path)
    lib.close()
    later = time.time() + 100
    os.utime(root / "obama" / "obama.jpg", (later, later))        # changed: hashed in the scanner's threads
    (root / "rose_leslie" / "img2.jpg").unlink()                   # a vanished photo: new files are hashed too
    for name in ("new_fifo.jpg", "new_zero.jpg", "biden/new_fifo.jpg"):
        shutil.copy2(root / "biden" / "biden.jpg", root / name)
    proc = subprocess.Popen([sys.executable, "-c", SWAP_SCRIPT, str(root), str(db), str(workers)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the scan hung on a named pipe or /dev/zero")
    assert proc.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    pipe, device = "not a regular file (a named pipe): not read", "not a regular file (a device): not read"
    assert got["errors"] == [["biden/new_fifo.jpg", pipe], ["new_fifo.jpg", pipe], ["new_zero.jpg", device],
                             ["obama/obama.jpg", pipe]], got
    assert got["removed"] == 1 and got["unchanged"] == 7


def test_a_stuck_file_hits_its_time_limit_and_the_scan_goes_on(people_small_db: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose analysis never returns (here the detector is made to hang; in life a
    file on a share that stops answering) is recorded as failed after the limit."""
    lib, root, db = _library_copy(people_small_db, tmp_path)
    shutil.copy2(root / "biden" / "biden.jpg", root / "stuck.jpg")
    (root / "rose_leslie" / "img2.jpg").unlink()

    def hangs(*a: object, **k: object) -> list:
        time.sleep(120)
        return []

    monkeypatch.setattr(face_api, "detect", hangs)
    monkeypatch.setattr(scanner_mod, "FILE_TIME_LIMIT_S", 2.0)
    report = _scan(lib, root, db)
    reason = "reading and analysing took longer than 2 s: skipped (a file on a device or network share that does not answer?)"
    assert report.errors == [("stuck.jpg", reason)]
    assert (report.failed, report.removed, report.unchanged) == (1, 1, 8)


CTRL_C_SCRIPT = """
import sys, time
from pathlib import Path
from organizer import cli, faces

def hangs(*a, **k):
    Path(sys.argv[3]).touch()
    time.sleep(3600)

faces.detect = hangs
sys.exit(cli.main(["scan", sys.argv[1], "--db", sys.argv[2], "--workers", "1", "-q"]))
"""


def test_ctrl_c_ends_a_scan_stuck_on_a_file(people_small_db: Path, tmp_path: Path) -> None:
    lib, root, db = _library_copy(people_small_db, tmp_path)
    lib.close()
    shutil.copy2(root / "biden" / "biden.jpg", root / "stuck.jpg")
    marker = tmp_path / "stuck-now"
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, str(root), str(db), str(marker)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("Ctrl-C did not end the scan")
    assert proc.returncode == 130 and "scan interrupted" in err, err


# --- 13: names that are not UTF-8 --------------------------------------------------------------

def _bytes_path(folder: Path, *names: bytes) -> bytes:
    return os.path.join(os.fsencode(folder), *names)


def test_names_that_are_not_utf8_are_reported_and_the_scan_completes(
        people_small_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib, root, db = _library_copy(people_small_db, tmp_path)
    lib.close()
    good = os.fsencode(root / "biden" / "biden.jpg")
    try:
        shutil.copy2(good, _bytes_path(root, b"Caf\xe9.jpg"))             # Latin-1 from an old camera
    except (OSError, UnicodeError) as exc:
        pytest.skip(f"this file system does not take non-UTF-8 names ({exc})")
    os.mkdir(_bytes_path(root, b"f\xf6lder"))
    shutil.copy2(good, _bytes_path(root, b"f\xf6lder", b"in_folder.jpg"))
    shutil.copy2(root / "biden" / "biden.jpg", root / "rose_leslie" / "new.jpg")                  # an ordinary new photo
    (root / "rose_leslie" / "img2.jpg").unlink()                          # a deleted one
    for _ in range(2):  # a second scan reports the same and duplicates nothing
        code = cli.main(["scan", str(root), "--db", str(db), "--workers", "1"])
        out, err = capsys.readouterr()
        assert code == 0 and "Traceback" not in err, err
        assert "Caf\\xe9.jpg: file name is not valid UTF-8: rename the file to scan it" in out
        assert "f\\xf6lder: folder name is not valid UTF-8: rename the folder to scan the photos in it" in out
    lib = Library.open(db_url(db))
    with lib.session() as s:
        paths = set(s.scalars(select(Photo.path)))
        clustered = s.scalar(select(func.count()).select_from(Face).where(Face.cluster_id.is_not(None)))
    assert "rose_leslie/new.jpg" in paths and "rose_leslie/img2.jpg" not in paths and len(paths) == 9
    assert clustered, "the scan went on to clustering"
    assert ht.healthy(db)


def test_a_photo_folder_path_that_is_not_utf8_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        os.mkdir(_bytes_path(tmp_path, b"r\xf6ot"))
    except (OSError, UnicodeError) as exc:
        pytest.skip(f"this file system does not take non-UTF-8 names ({exc})")
    code = cli.main(["scan", os.fsdecode(_bytes_path(tmp_path, b"r\xf6ot")), "--db", str(tmp_path / "lib.db"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and "not valid UTF-8" in err and "Traceback" not in err, err


@pytest.fixture(autouse=True)
def _no_alarm_left() -> Iterator[None]:
    """The per-file time limit must not leave an alarm running in the test process."""
    yield
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
