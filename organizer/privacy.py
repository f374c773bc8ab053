"""Forgetting face data for good: one person's, or everybody's.

Why the file is rebuilt: a deleted row's bytes stay in SQLite's free pages and in older
frames of the write-ahead log until they happen to be reused. So both functions delete the
rows in one transaction, then ``VACUUM`` and ``wal_checkpoint(TRUNCATE)``: afterwards no
embedding or thumbnail byte of what was forgotten is left in ``library.db`` or its ``-wal``.

Kept on purpose: **photos** (the user's files; keeping them is what stops a later scan from
detecting the forgotten faces again) and, with :func:`forget_all_faces`, **people** (what
the user typed, not biometric data). The undo history goes where it mentions what was
forgotten (undoing into deleted rows makes no sense); forgetting cannot be undone. Exports
showing what was forgotten (:func:`organizer.slideshow.record_export`): the organizer's own
temporary downloads are deleted, files the user exported elsewhere are named, not deleted.
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from .db import Library, sqlite_file
from .errors import LibraryError, PersonNotFound
from .labelling import refresh_cluster_sizes
from .models import (
    Cluster,
    ClusterRun,
    Face,
    FaceRejection,
    FaceThumb,
    Operation,
    Person,
    Photo,
)
from .queries import normalise_name, person_by_name
from .slideshow import ExportRecord, remove_export, take_export_records


@dataclass
class ForgetReport:
    """What was deleted, and whether the bytes left the database file."""

    person: str | None = None
    faces: int = 0
    thumbnails: int = 0
    rejections: int = 0
    people: int = 0
    clusters: int = 0
    operations: int = 0
    photos_kept: int = 0
    #: True when VACUUM and a full WAL checkpoint ran (SQLite); False elsewhere or when
    #: another program kept the log busy (then run the command again once it has closed)
    bytes_purged: bool = False
    file_bytes_before: int = 0
    file_bytes_after: int = 0
    #: the organizer's own copies of slideshows of what was forgotten, deleted
    exports_removed: list[str] = field(default_factory=list)
    #: slideshows the user exported (their files, left in place): delete them if they must go too
    exports_kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        who = f"{self.person}: " if self.person else ""
        text = (f"{who}forgot {self.faces} face(s) with their embeddings and {self.thumbnails} thumbnail(s), "
                f"{self.rejections} rejection(s), {self.operations} undo step(s)")
        if self.people:
            text += f", {self.people} person" if self.people == 1 else f", {self.people} people"
        if self.clusters:
            text += f", {self.clusters} cluster(s)"
        text += f"; {self.photos_kept} photo(s) kept"
        if self.bytes_purged:
            text += f"; library file compacted ({_mb(self.file_bytes_before)} -> {_mb(self.file_bytes_after)})"
        if self.exports_removed:
            text += f"; {len(self.exports_removed)} dashboard slideshow download(s) deleted"
        if self.exports_kept:
            text += (f"; slideshows you exported are still there (delete them if they must go too): "
                     f"{', '.join(self.exports_kept)}")
        return text


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _mentions(payload: dict, person_id: int | None, face_ids: set[int]) -> bool:
    """Does an operation's undo record name this person or one of these faces?"""
    payload = payload or {}
    faces = payload.get("faces", {}) or {}
    if any(int(k) in face_ids for k in faces):
        return True
    if person_id is None:
        return False
    if any(isinstance(v, dict) and v.get("person_id") == person_id for v in faces.values()):
        return True
    people = set(payload.get("people", {}) or {}) | set(payload.get("people_deleted", {}) or {})
    if str(person_id) in people or person_id in (payload.get("people_created") or []):
        return True
    pairs = (payload.get("rejections_added") or []) + (payload.get("rejections_removed") or [])
    return any(len(p) == 2 and (p[1] == person_id or p[0] in face_ids) for p in pairs)


def _rows(s: Session, statement: Executable) -> int:
    """How many rows a DELETE or UPDATE touched. (Session.execute is typed as returning a
    plain Result; for these statements it is a CursorResult, which has the count.)"""
    return cast(CursorResult[Any], s.execute(statement)).rowcount or 0


def _delete_faces(s: Session, face_ids: list[int], report: ForgetReport) -> None:
    for start in range(0, len(face_ids), 500):
        chunk = face_ids[start:start + 500]
        report.thumbnails += _rows(s, delete(FaceThumb).where(FaceThumb.face_id.in_(chunk)))
        report.rejections += _rows(s, delete(FaceRejection).where(FaceRejection.face_id.in_(chunk)))
        s.execute(update(Person).where(Person.cover_face_id.in_(chunk)).values(cover_face_id=None))
        report.faces += _rows(s, delete(Face).where(Face.id.in_(chunk)))


def forget_person(lib: Library, name: str) -> ForgetReport:
    """Delete person ``name`` with all their faces, embeddings, thumbnails and rejections
    (every face given to them, confirmed or automatic), keeping the photos; then purge
    the bytes from the file. :class:`PersonNotFound` if nobody has that name."""
    with lib.session() as s:
        person = person_by_name(s, name)
        if person is None:
            raise PersonNotFound(f"there is no person named {normalise_name(name)!r}")
        pid, pname = person.id, person.name
        report = ForgetReport(person=pname)
        face_ids = list(s.scalars(select(Face.id).where(Face.person_id == pid)))
        clusters = {c for c in s.scalars(select(Face.cluster_id).where(Face.person_id == pid)) if c is not None}
        photos = set(s.scalars(select(Face.photo_id).where(Face.person_id == pid)))
        _delete_faces(s, face_ids, report)
        # "this face is not <pid>" rows are about other people's faces: they go with pid
        report.rejections += _rows(s, delete(FaceRejection).where(FaceRejection.person_id == pid))
        forgotten = set(face_ids)
        named = re.compile(r"(?<!\w)" + re.escape(pname.lower()) + r"(?!\w)")
        for op_id, payload, description in s.execute(select(Operation.id, Operation.undo, Operation.description)):
            if _mentions(payload, pid, forgotten) or named.search((description or "").lower()):
                s.execute(delete(Operation).where(Operation.id == op_id))
                report.operations += 1
        s.execute(delete(Person).where(Person.id == pid))
        report.people = 1
        refresh_cluster_sizes(s, clusters)
        report.photos_kept = len(photos)
        exports = take_export_records(s, pid)
    _settle_exports(exports, report)
    _purge_bytes(lib, report)
    return report


def forget_all_faces(lib: Library) -> ForgetReport:
    """Delete every face, embedding, thumbnail, rejection, cluster and the undo history,
    keeping photos and people (see the module docstring); then purge the bytes."""
    report = ForgetReport()
    with lib.session() as s:
        report.photos_kept = s.scalar(select(func.count()).select_from(Photo)) or 0
        report.thumbnails = _rows(s, delete(FaceThumb))
        report.rejections = _rows(s, delete(FaceRejection))
        s.execute(update(Person).values(cover_face_id=None))
        report.faces = _rows(s, delete(Face))
        report.clusters = _rows(s, delete(Cluster))
        s.execute(delete(ClusterRun))
        report.operations = _rows(s, delete(Operation))
        exports = take_export_records(s, None)
    _settle_exports(exports, report)
    _purge_bytes(lib, report)
    return report


def _settle_exports(records: list[ExportRecord], report: ForgetReport) -> None:
    """Delete the organizer's own slideshow copies; name the user's that still exist.
    (Their records left the library in the forgetting transaction, with the names.)"""
    for r in records:
        path = Path(r.path)
        if r.temporary:
            if (path.exists() or path.is_symlink()) and remove_export(path):
                report.exports_removed.append(r.path)
        elif path.exists():
            report.exports_kept.append(r.path)


def _sqlite_files(lib: Library) -> list[Path]:
    db = sqlite_file(lib.engine.url.render_as_string(hide_password=False))
    return [db, Path(f"{db}-wal")] if db is not None else []


def _size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.exists())


def _purge_bytes(lib: Library, report: ForgetReport) -> None:
    """Rebuild the file and empty the write-ahead log so deleted rows leave the disk.

    Runs on a raw connection in autocommit: VACUUM cannot run inside a transaction, and
    the library's sessions always open one (BEGIN IMMEDIATE).
    """
    if lib.engine.dialect.name != "sqlite":
        # PostgreSQL & co. reclaim space themselves; their files are not ours to rewrite
        return
    files = _sqlite_files(lib)
    report.file_bytes_before = _size(files)
    raw = lib.engine.raw_connection()
    try:
        conn = cast(sqlite3.Connection, raw.driver_connection)  # the dialect is sqlite (checked above)
        conn.isolation_level = None
        try:
            conn.execute("VACUUM")
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError as exc:
            raise LibraryError(f"the faces were deleted, but the library file could not be compacted: {exc} "
                               "(run the command again when nothing else uses the library)") from exc
        report.bytes_purged = busy == 0
    finally:
        raw.close()
    report.file_bytes_after = _size(files)


__all__ = ["ForgetReport", "forget_all_faces", "forget_person"]
