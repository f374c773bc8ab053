"""The scanner on real photos and real SQLite files: faces, orientation, incremental
rescans, moves, edits, deletions, crashes and every kind of bad file."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from organizer import scanner as scanner_mod
from organizer.config import Settings
from organizer.db import Library
from organizer.errors import PhotoRootError
from organizer.models import Assignment, Face, FaceRejection, FaceThumb, Person, Photo, PhotoStatus
from organizer.scanner import scan

from .conftest import REPO, db_url, face_count, photos_dir, settings_for

TRAIN = "people-small/train"


def _copy_train(dst: Path) -> Path:
    shutil.copytree(photos_dir(TRAIN), dst)
    return dst


def _scan(lib: Library, root: Path, db: Path, **kw: object):
    return scan(lib, root, settings_for(db, **{"workers": 1, **kw}))


def _confirm_all(lib: Library, name: str, photo_path: str) -> int:
    """Name every face of one photo as ``name`` (as the user would), return the person id."""
    with lib.session() as s:
        person = Person(name=name)
        s.add(person)
        s.flush()
        photo = s.scalar(select(Photo).where(Photo.path == photo_path))
        assert photo is not None and photo.faces
        for f in photo.faces:
            f.person_id, f.assignment = person.id, Assignment.confirmed
        return person.id


def _labels(lib: Library) -> dict[str, tuple[str | None, str | None]]:
    with lib.session() as s:
        rows = s.execute(select(Photo.path, Person.name, Face.assignment)
                         .join(Face, Face.photo_id == Photo.id).outerjoin(Person, Person.id == Face.person_id))
        return {p: (n, a.value if a else None) for p, n, a in rows}


# --- faces and embeddings -------------------------------------------------------------


def test_scan_finds_every_face_and_stores_embeddings(people_small_lib: Library) -> None:
    with people_small_lib.session() as s:
        photos = s.scalars(select(Photo)).all()
        faces = s.scalars(select(Face)).all()
        thumbs = s.scalar(select(func.count()).select_from(FaceThumb))
    assert len(photos) == 9 and all(p.status == PhotoStatus.ok for p in photos)
    assert len(faces) == 9  # one face each, all found
    for f in faces:
        v = f.vector
        assert v.shape == (128,) and np.isfinite(v).all() and 0.5 < np.linalg.norm(v) < 2
        assert f.bottom > f.top and f.right > f.left and f.size > 20
        assert f.landmarks and len(f.landmarks["chin"]) == 17
        assert 0 <= f.quality <= 1
    assert thumbs == 9
    assert all(p.width and p.height and p.content_hash and p.taken_at for p in photos)


def test_same_person_embeddings_are_closer_than_different_people(people_small_lib: Library) -> None:
    with people_small_lib.session() as s:
        rows = [(p.path.split("/")[0], f.vector) for p, f in s.execute(select(Photo, Face).join(Face))]
    same, diff = [], []
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            d = float(np.linalg.norm(rows[i][1] - rows[j][1]))
            (same if rows[i][0] == rows[j][0] else diff).append(d)
    assert len(same) == 4 and len(diff) == 32
    assert max(same) < 0.6 < min(diff) or max(same) < min(diff)
    assert np.mean(same) + 0.15 < np.mean(diff)


def test_exif_rotated_copy_finds_the_same_face(tmp_path: Path) -> None:
    src = photos_dir(TRAIN) / "obama" / "obama.jpg"
    root = tmp_path / "photos"
    root.mkdir()
    shutil.copy(src, root / "upright.jpg")
    # store the pixels turned on their side and let EXIF say "rotate 90° clockwise to view",
    # as phones do
    img = Image.open(src)
    sideways = img.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(root / "phone.jpg", exif=exif, quality=95)
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    report = _scan(lib, root, db)
    assert report.failed == 0
    with lib.session() as s:
        faces = {p.path: (p, list(p.faces)) for p in s.scalars(select(Photo))}
    (up, up_faces), (ph, ph_faces) = faces["upright.jpg"], faces["phone.jpg"]
    assert len(up_faces) == 1 and len(ph_faces) == 1
    assert (ph.width, ph.height) == (up.width, up.height)
    a, b = up_faces[0], ph_faces[0]
    assert np.linalg.norm(a.vector - b.vector) < 0.15
    assert max(abs(x - y) for x, y in zip(a.box, b.box)) < 0.1 * a.size


def test_formats_heic_webp_behind_jpg_rgba_png(tmp_path: Path) -> None:
    more = photos_dir("edge-cases/more")
    root = tmp_path / "photos"
    root.mkdir()
    for rel in ["deepface_misc/img47.jpg", "exif_samples/heic/mobile/iphone_13_pro_max.HEIC",
                "pillow_hopper/hopper_orientation_6.webp", "pillow_hopper/hopper.tif"]:
        shutil.copy(more / rel, root / Path(rel).name)
    shutil.copy(photos_dir("edge-cases") / "32bit.png", root / "32bit.png")
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    report = _scan(lib, root, db)
    assert report.failed == 0, report.errors
    with lib.session() as s:
        got = {p.path: (len(p.faces), p.taken_at_source, p.taken_at) for p in s.scalars(select(Photo))}
    assert got["img47.jpg"][0] == 1          # WebP data behind a .jpg name
    assert got["32bit.png"][0] == 1          # RGBA PNG
    assert got["hopper_orientation_6.webp"][0] == 1
    assert got["hopper.tif"][0] == 1
    heic = got["iphone_13_pro_max.HEIC"]
    assert heic[1] == "exif" and heic[2].year == 2022  # capture time from the phone's EXIF


# --- incremental ------------------------------------------------------------------------


def test_unchanged_rescan_reads_no_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy_train(tmp_path / "photos")
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    first = _scan(lib, root, db)
    assert first.new == 9 and first.faces_added == 9

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("an unchanged photo was decoded")

    monkeypatch.setattr(scanner_mod, "analyse_file", boom)
    monkeypatch.setattr(scanner_mod, "file_hash", boom)
    again = _scan(lib, root, db)
    assert (again.unchanged, again.new, again.changed, again.faces_added) == (9, 0, 0, 0)
    assert face_count(lib) == 9


def test_touched_file_is_restamped_not_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy_train(tmp_path / "photos")
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    _scan(lib, root, db)
    target = root / "biden" / "biden.jpg"
    os.utime(target, (time.time() + 100, time.time() + 100))
    monkeypatch.setattr(scanner_mod, "analyse_file", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    report = _scan(lib, root, db)
    assert report.restamped == 1 and report.unchanged == 8 and face_count(lib) == 9


def test_edited_photo_is_redone_and_keeps_its_labels(tmp_path: Path) -> None:
    root = _copy_train(tmp_path / "photos")
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    _scan(lib, root, db)
    _confirm_all(lib, "Joe", "biden/biden.jpg")
    # the user edits the photo: a slight crop and re-save changes every byte
    target = root / "biden" / "biden.jpg"
    img = Image.open(target)
    w, h = img.size
    img.crop((4, 4, w - 4, h - 4)).save(target, quality=90)
    report = _scan(lib, root, db)
    assert report.changed == 1 and report.labels_carried == 1
    assert _labels(lib)["biden/biden.jpg"] == ("Joe", "confirmed")
    assert face_count(lib) == 9


def test_moved_and_renamed_photos_keep_faces_and_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy_train(tmp_path / "photos")
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    _scan(lib, root, db)
    pid = _confirm_all(lib, "Barack", "obama/obama.jpg")
    with lib.session() as s:
        face_id = s.scalar(select(Face.id).join(Photo).where(Photo.path == "obama/obama.jpg"))
        s.add(FaceRejection(face_id=face_id, person_id=s.scalar(select(Person.id).where(Person.id == pid))))
    (root / "2009" / "inauguration").mkdir(parents=True)
    shutil.move(root / "obama" / "obama.jpg", root / "2009" / "inauguration" / "barack.jpg")
    shutil.move(root / "biden" / "biden2.jpg", root / "biden" / "joe-renamed.jpg")
    monkeypatch.setattr(scanner_mod, "analyse_file", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    report = _scan(lib, root, db)
    assert report.moved == 2 and report.removed == 0 and report.new == 0
    labels = _labels(lib)
    assert labels["2009/inauguration/barack.jpg"] == ("Barack", "confirmed")
    assert "obama/obama.jpg" not in labels and "biden/joe-renamed.jpg" in labels
    with lib.session() as s:
        assert s.scalar(select(func.count()).select_from(FaceRejection)) == 1
        assert s.scalar(select(Face.id).join(Photo).where(Photo.path == "2009/inauguration/barack.jpg")) == face_id
    assert face_count(lib) == 9


def test_deleted_photos_forget_faces_unless_confirmed(tmp_path: Path) -> None:
    root = _copy_train(tmp_path / "photos")
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    _scan(lib, root, db)
    _confirm_all(lib, "Rose", "rose_leslie/img1.jpg")
    (root / "rose_leslie" / "img1.jpg").unlink()
    (root / "rose_leslie" / "img2.jpg").unlink()
    report = _scan(lib, root, db)
    assert report.removed == 1 and report.kept_missing == 1
    with lib.session() as s:
        status = dict(s.execute(select(Photo.path, Photo.status)).all())
    assert status["rose_leslie/img1.jpg"] == PhotoStatus.missing
    assert "rose_leslie/img2.jpg" not in status
    assert _labels(lib)["rose_leslie/img1.jpg"] == ("Rose", "confirmed")
    # the photo comes back: it is picked up again with its label
    shutil.copy(photos_dir(TRAIN) / "rose_leslie" / "img1.jpg", root / "rose_leslie" / "back.jpg")
    report = _scan(lib, root, db)
    assert report.moved == 1
    assert _labels(lib)["rose_leslie/back.jpg"] == ("Rose", "confirmed")


def test_unplugged_library_forgets_nothing(tmp_path: Path) -> None:
    root = _copy_train(tmp_path / "photos")
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    _scan(lib, root, db)
    # the disk is unplugged, leaving an empty mount point
    shutil.rmtree(root)
    root.mkdir()
    report = _scan(lib, root, db)
    assert report.removal_skipped == 9 and report.removed == 0
    assert face_count(lib) == 9
    # the folder vanished entirely: a clear error, nothing changed
    root.rmdir()
    with pytest.raises(PhotoRootError, match="does not exist"):
        _scan(lib, root, db)
    assert face_count(lib) == 9


def test_another_folder_with_the_same_library_is_refused(tmp_path: Path) -> None:
    root = _copy_train(tmp_path / "photos")
    other = tmp_path / "other"
    other.mkdir()
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    _scan(lib, root, db)
    with pytest.raises(PhotoRootError, match="--new-root"):
        _scan(lib, other, db)
    assert face_count(lib) == 9
    # the library moved to a new disk: relative paths carry over, nothing is re-read
    moved = tmp_path / "newdisk"
    shutil.copytree(root, moved)
    report = scan(lib, moved, settings_for(db, workers=1), new_root=True)
    assert report.new == 0 and report.removed == 0 and face_count(lib) == 9
    assert lib.root == moved.resolve()


# --- crash safety -------------------------------------------------------------------------


def _committed_photos(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as c:
            return c.execute("select count(*) from photos").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_mid_scan_then_resume_gives_no_duplicates(tmp_path: Path) -> None:
    lfw = photos_dir("lfw-dev")
    root = tmp_path / "photos"
    for d in sorted(p for p in lfw.iterdir() if p.is_dir())[:60]:
        shutil.copytree(d, root / d.name)
    n_files = sum(1 for _ in root.rglob("*.jpg"))
    clean_db = tmp_path / "clean.db"
    clean = Library.open(db_url(clean_db))
    scan(clean, root, settings_for(clean_db, workers=2))
    expected = face_count(clean)

    db = tmp_path / "killed.db"
    env = {**os.environ, "ORGANIZER_BATCH_SIZE": "4", "ORGANIZER_WORKERS": "2"}
    cmd = [sys.executable, "-m", "organizer.cli", "scan", str(root), "--db", str(db), "-q"]
    for kill_after in (8, 40):
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, start_new_session=True)
        deadline = time.monotonic() + 120
        while _committed_photos(db) < kill_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 0 < _committed_photos(db) < n_files, "the kill should land mid-scan"
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lib = Library.open(db_url(db))
    assert face_count(lib) == expected
    with lib.session() as s:
        assert s.scalar(select(func.count()).select_from(Photo)) == n_files
        dupes = s.execute(select(Face.photo_id, Face.top, Face.left, func.count()).group_by(
            Face.photo_id, Face.top, Face.left).having(func.count() > 1)).all()
    assert dupes == []


# --- bad files ------------------------------------------------------------------------------


def _bad_folder(root: Path) -> dict[str, str]:
    """Every kind of bad file, with the words its error must contain."""
    good = photos_dir(TRAIN) / "obama" / "obama.jpg"
    root.mkdir(parents=True)
    shutil.copy(good, root / "good.jpg")
    (root / "empty.jpg").write_bytes(b"")
    data = good.read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "notes.jpg").write_text("this is not a photo\n" * 50)
    (root / "garbage.png").write_bytes(os.urandom(4096))
    Image.new("1", (20000, 20000)).save(root / "bomb.png")  # 400 MP, a few KB on disk
    os.symlink("loop_b.jpg", root / "loop_a.jpg")
    os.symlink("loop_a.jpg", root / "loop_b.jpg")
    os.symlink("nowhere.jpg", root / "dangling.jpg")
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")  # a folder loop
    return {
        "empty.jpg": "empty", "truncated.jpg": "truncated", "notes.jpg": "not an image",
        "garbage.png": "not an image", "bomb.png": "decompression bomb",
        "loop_a.jpg": "loop", "loop_b.jpg": "loop", "dangling.jpg": "broken symbolic link",
    }


def test_every_bad_file_is_recorded_and_the_scan_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    expected = _bad_folder(root)
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    report = scan(lib, root, settings_for(db, workers=2))
    assert report.new == 1 and report.faces_added == 1
    assert report.failed == len(expected)
    with lib.session() as s:
        rows = {p.path: p for p in s.scalars(select(Photo))}
    assert rows["good.jpg"].status == PhotoStatus.ok
    for name, words in expected.items():
        assert rows[name].status == PhotoStatus.error, name
        assert words in rows[name].error, (name, rows[name].error)
    # the folder link loop was walked once, not forever
    assert not any(p.startswith("sub/up") for p in rows)
    # a rescan retries failures, records them again, and duplicates nothing
    again = scan(lib, root, settings_for(db, workers=1))
    assert again.failed == len(expected) and face_count(lib) == 1


def test_unreadable_file_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy_train(tmp_path / "photos")
    victim = root / "obama" / "obama2.jpg"
    real = scanner_mod.file_hash

    def failing_hash(path: Path) -> str:
        if Path(path) == victim:
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(scanner_mod, "file_hash", failing_hash)
    db = tmp_path / "lib.db"
    lib = Library.open(db_url(db))
    report = _scan(lib, root, db)
    assert report.failed == 1 and report.new == 8
    assert ("obama/obama2.jpg", "cannot read file: Permission denied") in report.errors


def test_unreadable_file_by_permissions(tmp_path: Path) -> None:
    """A real chmod 000 file. Root reads any file, so as root the scan runs as the user
    nobody (in a folder nobody may write), which is what a family's laptop user is."""
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="organizer-perm-")) if as_root else tmp_path
    try:
        root = _copy_train(base / "photos")
        (root / "obama" / "obama2.jpg").chmod(0)
        db = base / "lib.db"
        if not as_root:
            report = _scan(Library.open(db_url(db)), root, db)
            assert report.failed == 1 and "Permission denied" in report.errors[0][1]
            return
        for d in [base, *(p for p in base.rglob("*") if p.is_dir())]:
            d.chmod(0o777)
        for f in base.rglob("*.jpg"):
            if f.name != "obama2.jpg":
                f.chmod(0o644)
        nobody = 65534
        try:
            done = subprocess.run([sys.executable, "-m", "organizer.cli", "scan", str(root), "--db", str(db),
                                   "--workers", "1", "--no-cluster"], cwd=REPO, user=nobody, group=nobody,
                                  env={**os.environ, "HOME": str(base)}, capture_output=True, text=True, timeout=300)
        except (PermissionError, OSError) as exc:
            pytest.skip(f"cannot run a process as the user nobody here ({exc})")
        assert done.returncode == 0, done.stderr
        assert "1 failed" in done.stdout and "obama/obama2.jpg: cannot read file: Permission denied" in done.stdout, done.stdout
        with sqlite3.connect(db) as c:
            rows = dict(c.execute("SELECT path, status FROM photos").fetchall())
        assert rows.pop("obama/obama2.jpg") == "error" and len(rows) == 8 and set(rows.values()) == {"ok"}
    finally:
        if as_root:
            shutil.rmtree(base, ignore_errors=True)


# --- migrations -----------------------------------------------------------------------------


def test_library_made_by_first_revision_upgrades_with_data(tmp_path: Path) -> None:
    from organizer.db import current_revision, head_revision, make_engine, upgrade

    db = tmp_path / "old.db"
    engine = make_engine(db_url(db))
    upgrade(engine, "0001")
    with engine.begin() as c:
        c.exec_driver_sql("insert into library_meta(key, value) values ('root', '/photos')")
        c.exec_driver_sql(
            "insert into photos(id, path, size, mtime, status, scanned_at) values (1, 'a.jpg', 10, 1.0, 'ok', '2020-01-01 00:00:00')")
        c.exec_driver_sql("insert into people(id, name, hidden, created_at) values (1, 'Grandma', 0, '2020-01-01 00:00:00')")
        c.exec_driver_sql(
            "insert into faces(id, photo_id, top, right, bottom, left, embedding, detector, size, quality, person_id, "
            "assignment, is_face, created_at) values (1, 1, 1, 50, 50, 1, ?, 'hog', 49, 0.5, 1, 'confirmed', 1, '2020-01-01 00:00:00')",
            (np.ones(128, dtype=np.float32).tobytes(),))
    engine.dispose()
    lib = Library.open(db_url(db))
    assert current_revision(lib.engine) == head_revision()
    assert _labels(lib) == {"a.jpg": ("Grandma", "confirmed")}
    assert lib.root == Path("/photos")
    with lib.session() as s:
        assert s.scalars(select(Face.embedding_engine)).all() == ["dlib"]  # made before the fast engine


def _library_at_0003(db: Path) -> None:
    """A library as revision 0003 left it: a named, confirmed face with a thumbnail and a
    rejection, a machine-assigned face, a person's cover, an undo record."""
    from organizer.db import make_engine, upgrade

    engine = make_engine(db_url(db))
    upgrade(engine, "0003")
    with engine.begin() as c:
        c.exec_driver_sql("insert into photos(id, path, size, mtime, status, scanned_at) "
                          "values (1, 'a.jpg', 10, 1.0, 'ok', '2020-01-01 00:00:00')")
        c.exec_driver_sql("insert into people(id, name, hidden, created_at) values (1, 'Grandma', 0, '2020-01-01 00:00:00'), "
                          "(2, 'Tom', 0, '2020-01-01 00:00:00')")
        for fid, pid, how in ((1, 1, "confirmed"), (2, 2, "auto")):
            c.exec_driver_sql(
                "insert into faces(id, photo_id, top, right, bottom, left, embedding, detector, size, quality, person_id, "
                "assignment, is_face, created_at) values (?, 1, 1, 50, 50, 1, ?, 'hog', 49, 0.5, ?, ?, 1, '2020-01-01 00:00:00')",
                (fid, np.full(128, fid, dtype=np.float32).tobytes(), pid, how))
        c.exec_driver_sql("insert into face_thumbs(face_id, jpeg) values (1, x'ffd8')")
        c.exec_driver_sql("insert into face_rejections(face_id, person_id, created_at) values (1, 2, '2020-01-01')")
        c.exec_driver_sql("update people set cover_face_id = 1 where id = 1")
        c.exec_driver_sql("insert into operations(kind, description, undo, created_at, undone) "
                          "values ('assign', 'x', '{}', '2020-01-01 00:00:00', 0)")
        c.exec_driver_sql("delete from faces where id = 2")  # the high-water mark stays at 2
        c.exec_driver_sql(
            "insert into faces(photo_id, top, right, bottom, left, embedding, detector, size, quality, is_face, created_at) "
            "values (1, 1, 50, 50, 1, ?, 'hog', 49, 0.5, 1, '2020-01-01 00:00:00')", (np.zeros(128, np.float32).tobytes(),))
    engine.dispose()


def _library_rows(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as c:
        return {
            "faces": c.execute("select id, photo_id, person_id, assignment, is_face, embedding from faces order by id").fetchall(),
            "thumbs": c.execute("select face_id, jpeg from face_thumbs").fetchall(),
            "rejections": c.execute("select face_id, person_id from face_rejections").fetchall(),
            "people": c.execute("select id, name, cover_face_id from people order by id").fetchall(),
            "operations": c.execute("select id, kind from operations").fetchall(),
            "sequence": c.execute("select name, seq from sqlite_sequence where name = 'faces'").fetchall(),
        }


def test_revision_0004_records_dlib_for_old_faces_and_keeps_every_label(tmp_path: Path) -> None:
    from alembic import command

    from organizer.db import alembic_config, current_revision, foreign_keys_off, make_engine

    db = tmp_path / "old.db"
    _library_at_0003(db)
    before = _library_rows(db)
    assert [f[0] for f in before["faces"]] == [1, 3] and before["sequence"] == [("faces", 3)]
    lib = Library.open(db_url(db))  # upgrades 0003 -> head
    assert _library_rows(db) == before, "the new column must not touch rows, labels, thumbnails or id marks"
    with sqlite3.connect(db) as c:
        assert c.execute("select id, embedding_engine from faces order by id").fetchall() == [(1, "dlib"), (3, "dlib")]
        assert "AUTOINCREMENT" in c.execute("select sql from sqlite_master where name = 'faces'").fetchone()[0]
    with lib.session() as s:
        photo = s.get(Photo, 1)
        assert photo is not None
        s.add(Face(photo_id=1, top=1, right=50, bottom=50, left=1, embedding=np.ones(128, np.float32).tobytes(),
                   embedding_engine="onnx-dlib-resnet-v1", size=49, quality=0.5))
    with lib.session() as s:
        assert s.execute(select(Face.id, Face.embedding_engine).order_by(Face.id)).all() == [
            (1, "dlib"), (3, "dlib"), (4, "onnx-dlib-resnet-v1")]  # ids still never reused
    lib.close()

    # and back: the downgrade rebuilds faces without the column, keeping rows and the flag
    engine = make_engine(db_url(db))
    cfg = alembic_config(db_url(db))
    with engine.connect() as conn, foreign_keys_off(conn), conn.begin():
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    assert current_revision(engine) == "0003"
    engine.dispose()
    after = _library_rows(db)
    assert after["thumbs"] == before["thumbs"] and after["rejections"] == before["rejections"]
    assert after["people"] == before["people"] and [f[0] for f in after["faces"]] == [1, 3, 4]
    with sqlite3.connect(db) as c:
        sql = c.execute("select sql from sqlite_master where name = 'faces'").fetchone()[0]
    assert "AUTOINCREMENT" in sql and "embedding_engine" not in sql


def test_alembic_command_line_upgrades_from_repo_root(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    env = {**os.environ, "ORGANIZER_DB": db_url(db)}
    alembic = Path(sys.executable).with_name("alembic")
    done = subprocess.run([str(alembic), "upgrade", "head"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from alembic_version").fetchone()[0] == 1
        assert {"photos", "faces", "people"} <= {r[0] for r in c.execute("select name from sqlite_master")}


# --- settings -------------------------------------------------------------------------------


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORGANIZER_MAX_SIZE", "900")
    monkeypatch.setenv("ORGANIZER_MODEL", "cnn")
    s = Settings.from_env()
    assert s.max_size == 900 and s.model == "cnn" and s.eps == Settings().eps
