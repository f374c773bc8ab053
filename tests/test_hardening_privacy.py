"""Privacy: `organizer forget` removes the rows *and* the bytes from the SQLite file, and
nothing in a scan or the dashboard talks to the network."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from organizer import cli
from organizer.config import Settings
from organizer.db import Library
from organizer.errors import PersonNotFound
from organizer.labelling import history, set_hidden
from organizer.models import Cluster, Face, FaceRejection, FaceThumb, Operation, Person, Photo
from organizer.privacy import forget_all_faces, forget_person
from organizer.scanner import scan
from organizer.testing import label_by_folder

from .conftest import copy_db, db_url


def _file_bytes(db: Path) -> bytes:
    """Everything SQLite keeps on disk for this library: the file and its log."""
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def _slices(blob: bytes, n: int = 6, width: int = 40) -> list[bytes]:
    """Pieces of a value that are unique enough to look for (a value bigger than a page
    is split across overflow pages, so its whole byte string may never appear at once)."""
    step = max(1, (len(blob) - width) // n)
    return [blob[i:i + width] for i in range(step // 2, len(blob) - width, step)][:n]


def _found(haystack: bytes, blob: bytes) -> int:
    return sum(piece in haystack for piece in _slices(blob))


def _person_data(lib: Library, name: str) -> tuple[int, list[bytes], list[bytes]]:
    with lib.session() as s:
        pid = s.scalar(select(Person.id).where(Person.name == name))
        faces = list(s.scalars(select(Face).where(Face.person_id == pid)))
        thumbs = [s.get(FaceThumb, f.id).jpeg for f in faces]
        return pid, [f.embedding for f in faces], thumbs


def _db_path(lib: Library) -> Path:
    return Path(lib.engine.url.database)


@pytest.fixture()
def lib_without_secure_delete(lfw_lib: Library) -> Library:
    """The library as SQLite builds without SECURE_DELETE leave it (Debian's has it on, most
    others do not): deleted rows keep their bytes in free space, so only VACUUM removes them."""
    @event.listens_for(lfw_lib.engine, "connect")
    def _off(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
        dbapi_conn.execute("PRAGMA secure_delete=OFF")

    lfw_lib.engine.dispose()
    return lfw_lib


def test_forget_person_removes_rows_and_bytes(lib_without_secure_delete: Library, tmp_path: Path) -> None:
    lfw_lib = lib_without_secure_delete
    names = label_by_folder(lfw_lib)
    victim, other = sorted(names)[0], sorted(names)[1]
    pid, embeddings, thumbs = _person_data(lfw_lib, victim)
    _, other_emb, other_thumbs = _person_data(lfw_lib, other)
    assert len(embeddings) >= 4
    # the user's own actions about the victim: an undo record and a rejection
    with lfw_lib.session() as s:
        s.add(FaceRejection(face_id=s.scalar(select(Face.id).where(Face.person_id == names[other])), person_id=pid))
    set_hidden(lfw_lib, pid, True)
    assert any(victim in op.description for op in history(lfw_lib))
    with lfw_lib.session() as s:
        photos_before = s.scalar(select(func.count()).select_from(Photo))
        faces_before = s.scalar(select(func.count()).select_from(Face))

    db = _db_path(lfw_lib)
    before = _file_bytes(db)
    assert all(_found(before, e) for e in embeddings), "the victim's embeddings should be in the file to begin with"
    assert all(_found(before, t) for t in thumbs)

    # deleting rows alone is not enough, even after a checkpoint: the bytes stay in the
    # file's free space (why forget vacuums)
    plain = copy_db(db, tmp_path / "plain.db")
    with sqlite3.connect(plain) as c:
        c.execute("PRAGMA foreign_keys=ON")
        c.execute("PRAGMA secure_delete=OFF")
        c.execute("DELETE FROM faces WHERE person_id = ?", (pid,))
        c.commit()
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert any(_found(_file_bytes(plain), e) for e in embeddings)

    report = forget_person(lfw_lib, victim.upper())  # names resolve case-insensitively
    assert report.person == victim and report.faces == len(embeddings)
    assert report.bytes_purged and report.file_bytes_after <= report.file_bytes_before

    with lfw_lib.session() as s:
        assert s.scalar(select(Person).where(Person.id == pid)) is None
        assert s.scalar(select(func.count()).select_from(FaceRejection).where(FaceRejection.person_id == pid)) == 0
        assert s.scalar(select(func.count()).select_from(Photo)) == photos_before  # the photos stay
        assert s.scalar(select(func.count()).select_from(Face)) == faces_before - report.faces
        left = set(s.scalars(select(Face.embedding)))
        ops = list(s.scalars(select(Operation.description)))
    assert not any(e in left for e in embeddings)
    assert not any(victim in d for d in ops)

    after = _file_bytes(db)
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    for e in embeddings:
        assert _found(after, e) == 0, "an embedding of the forgotten person is still in the file"
    for t in thumbs:
        assert _found(after, t) == 0, "a thumbnail of the forgotten person is still in the file"
    # ...while everyone else's data is untouched
    assert all(_found(after, e) for e in other_emb) and all(_found(after, t) for t in other_thumbs)

    with pytest.raises(PersonNotFound):
        forget_person(lfw_lib, victim)


def test_forget_all_faces_wipes_biometrics_keeps_photos_and_rescan_does_not_bring_them_back(
        lib_without_secure_delete: Library, lfw_root: Path) -> None:
    lfw_lib = lib_without_secure_delete
    label_by_folder(lfw_lib)
    from organizer.clustering import cluster_faces

    cluster_faces(lfw_lib)
    db = _db_path(lfw_lib)
    with lfw_lib.session() as s:
        sample = [f.embedding for f in s.scalars(select(Face).limit(20))]
        thumbs = [t.jpeg for t in s.scalars(select(FaceThumb).limit(10))]
        photos, people = (s.scalar(select(func.count()).select_from(Photo)),
                          s.scalar(select(func.count()).select_from(Person)))
    assert all(_found(_file_bytes(db), e) for e in sample)

    report = forget_all_faces(lfw_lib)
    assert report.faces > 0 and report.bytes_purged
    with lfw_lib.session() as s:
        for table in (Face, FaceThumb, FaceRejection, Cluster, Operation):
            assert s.scalar(select(func.count()).select_from(table)) == 0, table.__tablename__
        assert s.scalar(select(func.count()).select_from(Photo)) == photos
        assert s.scalar(select(func.count()).select_from(Person)) == people
    after = _file_bytes(db)
    assert not any(_found(after, e) for e in sample) and not any(_found(after, t) for t in thumbs)

    # a later scan sees the photos as already read: the faces do not come back
    rescan = scan(lfw_lib, lfw_root, Settings(db_url=db_url(db), workers=1))
    assert rescan.faces_added == 0 and rescan.unchanged == photos


def test_forget_cli(lfw_lib: Library, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    names = label_by_folder(lfw_lib)
    db = str(_db_path(lfw_lib))
    victim = sorted(names)[2]
    assert cli.main(["forget", victim, "--db", db]) == 0
    out = capsys.readouterr().out
    assert victim in out and "forgot" in out and "photo(s) kept" in out
    with lfw_lib.session() as s:
        assert s.scalar(select(Person).where(Person.name == victim)) is None

    # unknown name, nothing and both, --all-faces unconfirmed: one line, non-zero, nothing changed
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    for argv, code in ((["forget", "Nobody At All"], 1), (["forget"], 2),
                       (["forget", victim, "--all-faces"], 2), (["forget", "--all-faces"], 2)):
        assert cli.main([*argv, "--db", db]) == code, argv
        err = capsys.readouterr().err.strip()
        assert err and "\n" not in err and "Traceback" not in err, err
    with lfw_lib.session() as s:
        assert s.scalar(select(func.count()).select_from(Face)) > 0

    assert cli.main(["forget", "--all-faces", "--yes", "--db", db]) == 0
    with lfw_lib.session() as s:
        assert s.scalar(select(func.count()).select_from(Face)) == 0
