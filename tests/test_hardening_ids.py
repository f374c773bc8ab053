"""Ids are never reused, undo never writes an old decision onto another face, and a name
is one name however its letters were typed (hardening, second round: items 1, 7 and 19)."""
from __future__ import annotations

import json
import shutil
import sqlite3
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from organizer import labelling
from organizer.browse import find_person, list_people
from organizer.db import Library, make_engine, upgrade
from organizer.errors import InvalidRequest
from organizer.models import Assignment, Face, FaceRejection, Operation, Person, Photo
from organizer.scanner import scan

from .conftest import db_url, photos_dir, settings_for


def _scan(lib: Library, db: Path, folder: Path) -> None:
    scan(lib, folder, settings_for(db, workers=1))


def _newest_face(lib: Library) -> Face:
    with lib.session() as s:
        face = s.scalar(select(Face).order_by(Face.id.desc()).limit(1))
        assert face is not None
        return face


def test_a_deleted_face_id_is_never_given_to_a_new_face_and_undo_leaves_the_newcomer_alone(tmp_path: Path) -> None:
    src = photos_dir("people-small/train")
    root = tmp_path / "photos"
    for rel in ("rose_leslie/img1.jpg", "rose_leslie/img2.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, root / rel)
    db = tmp_path / "library.db"
    lib = Library.open(db_url(db))
    _scan(lib, db, root)
    face = _newest_face(lib)
    with lib.session() as s:
        path = s.get(Photo, face.photo_id).path  # type: ignore[union-attr]
    labelling.assign_faces(lib, [face.id], "Rose")
    labelling.remove_faces(lib, [face.id])  # the record: face <id> was Rose's (confirmed)

    (root / path).unlink()  # the newest face's photo goes; a new photo arrives
    _scan(lib, db, root)
    (root / "kit").mkdir()
    shutil.copy2(src / "kit_harington/john1.jpeg", root / "kit/john1.jpeg")
    _scan(lib, db, root)

    newcomer = _newest_face(lib)
    assert newcomer.id > face.id, "a new face got the id of a deleted one"
    labelling.undo(lib)
    with lib.session() as s:
        f = s.get(Face, newcomer.id)
        assert f is not None and f.person_id is None and f.assignment is None
        assert s.scalar(select(func.count()).select_from(FaceRejection)) == 0


def _fake_face(s, photo_id: int, face_id: int | None, seed: int) -> Face:  # type: ignore[no-untyped-def]
    vec = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    f = Face(photo_id=photo_id, top=1, right=50, bottom=50, left=1, embedding=vec.tobytes(), size=49, quality=0.5)
    if face_id is not None:
        f.id = face_id
    s.add(f)
    s.flush()
    return f


def _library_with_a_removed_face(tmp_path: Path) -> tuple[Library, int, int]:
    """A library with one face, confirmed as Rose and then removed from her (the record undo replays)."""
    lib = Library.open(db_url(tmp_path / "library.db"))
    with lib.session() as s:
        photo = Photo(path="a.jpg")
        s.add(photo)
        s.flush()
        face_id = _fake_face(s, photo.id, None, seed=1).id
        photo_id = photo.id
    labelling.assign_faces(lib, [face_id], "Rose")
    labelling.remove_faces(lib, [face_id])
    return lib, photo_id, face_id


@pytest.mark.parametrize("legacy_record", [False, True], ids=["fingerprinted", "record-from-before-fingerprints"])
def test_undo_skips_a_recorded_face_whose_id_now_holds_another_face(tmp_path: Path, legacy_record: bool) -> None:
    """Libraries from before revision 0003 may already hold a reused id; undo must tell the
    faces apart (by fingerprint, or by age for records without one) and say what it skipped."""
    lib, photo_id, old_id = _library_with_a_removed_face(tmp_path)
    with lib.session() as s:
        s.delete(s.get(Face, old_id))
        s.flush()
        _fake_face(s, photo_id, old_id, seed=2)  # what SQLite did before: the same id, a stranger's face
        if legacy_record:
            op = s.scalar(select(Operation).order_by(Operation.id.desc()).limit(1))
            data = json.loads(json.dumps(op.undo))  # type: ignore[union-attr]
            for fields in data["faces"].values():
                fields.pop("_fp", None)
            op.undo = data  # type: ignore[union-attr]
    done = labelling.undo(lib)
    assert done and "1 face changed since" in done[0]
    with lib.session() as s:
        f = s.get(Face, old_id)
        assert f is not None and f.person_id is None and f.assignment is None


def test_undo_still_restores_the_same_face(tmp_path: Path) -> None:
    """The fingerprint check must not stop an ordinary undo."""
    lib, _photo_id, fid = _library_with_a_removed_face(tmp_path)
    assert labelling.undo(lib) == ["removed 1 face from Rose"]
    with lib.session() as s:
        f = s.get(Face, fid)
        assert f is not None and f.assignment == Assignment.confirmed and f.person.name == "Rose"  # type: ignore[union-attr]


def _library_at_0002(db: Path) -> None:
    engine = make_engine(db_url(db))
    upgrade(engine, "0002")
    vec = np.ones(128, dtype=np.float32).tobytes()
    history = {"faces": {"40": {"person_id": 1}}, "people_created": [7], "rejections_added": [[41, 1]]}
    with engine.begin() as c:
        c.exec_driver_sql("insert into photos(id, path, size, mtime, status, scanned_at) "
                          "values (1, 'a.jpg', 1, 1.0, 'ok', '2020-01-01 00:00:00')")
        c.exec_driver_sql("insert into people(id, name, hidden, created_at) "
                          "values (1, ?, 0, '2020-01-01 00:00:00')", (unicodedata.normalize("NFD", "José"),))
        for fid in (1, 2):
            c.exec_driver_sql(
                "insert into faces(id, photo_id, top, right, bottom, left, embedding, detector, size, quality, "
                "person_id, assignment, is_face, created_at) "
                "values (?, 1, 1, 50, 50, 1, ?, 'hog', 49, 0.5, 1, 'confirmed', 1, '2020-01-01 00:00:00')", (fid, vec))
        c.exec_driver_sql("insert into face_thumbs(face_id, jpeg) values (1, x'ffd8')")
        c.exec_driver_sql("insert into face_rejections(face_id, person_id, created_at) values (2, 1, '2020-01-01')")
        c.exec_driver_sql("update people set cover_face_id = 1")
        c.exec_driver_sql("insert into operations(kind, description, undo, created_at, undone) "
                          "values ('assign', 'x', ?, '2020-01-01 00:00:00', 0)", (json.dumps(history),))
    engine.dispose()


def test_migration_to_never_reused_ids_keeps_every_label_and_starts_above_the_history(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _library_at_0002(db)
    lib = Library.open(db_url(db))  # upgrades: every table is rebuilt
    with sqlite3.connect(db) as c:
        assert c.execute("select face_id from face_thumbs").fetchall() == [(1,)], "thumbnails lost by the rebuild"
        assert c.execute("select face_id, person_id from face_rejections").fetchall() == [(2, 1)]
        assert c.execute("select cover_face_id from people").fetchall() == [(1,)]
        assert c.execute("select count(*) from faces where assignment = 'confirmed'").fetchone() == (2,)
        for table in ("photos", "people", "faces", "clusters", "operations"):
            sql = c.execute("select sql from sqlite_master where name = ?", (table,)).fetchone()[0]
            assert "AUTOINCREMENT" in sql, table
        seq = dict(c.execute("select name, seq from sqlite_sequence").fetchall())
    assert seq["faces"] == 41 and seq["people"] == 7, seq  # the largest ids the undo history names
    with lib.session() as s:
        assert _fake_face(s, 1, None, seed=3).id == 42
        assert s.scalar(select(Person.name)) == "José" and unicodedata.is_normalized("NFC", "José")


def test_names_typed_in_two_unicode_forms_are_one_person(people_small_lib: Library) -> None:
    lib = people_small_lib
    with lib.session() as s:
        a, b = list(s.scalars(select(Face.id).order_by(Face.id).limit(2)))
    nfc, nfd = unicodedata.normalize("NFC", "José"), unicodedata.normalize("NFD", "José")
    assert nfc != nfd
    labelling.assign_faces(lib, [a], nfd)
    labelling.assign_faces(lib, [b], nfc + "\u200b")  # a zero-width space pasted along
    people = list_people(lib)
    assert [p.name for p in people] == [nfc] and people[0].face_count == 2
    assert find_person(lib, "JOSÉ").name == nfc  # case folded beyond ASCII
    assert [p.name for p in list_people(lib, search="josé")] == [nfc]


@pytest.mark.parametrize("name", ["\u200b", "\u200d\u200e", "\ufeff ", " \u2060 "])
def test_a_name_of_only_invisible_characters_is_refused(people_small_lib: Library, name: str) -> None:
    with people_small_lib.session() as s:
        face_id = s.scalar(select(Face.id).limit(1))
    with pytest.raises(InvalidRequest, match="cannot be empty"):
        labelling.assign_faces(people_small_lib, [face_id], name)  # type: ignore[list-item]
    assert list_people(people_small_lib) == []
