"""The user's labelling operations: one function each, one transaction each.

Every operation validates its whole request before changing anything (an unknown id, an
unknown or empty name raises a specific error and leaves the library as it was), and
records in ``operations`` the exact previous state of every row it touches, so
:func:`undo` can put it back. Undo works last-in-first-out; a re-clustering in between
is fine (faces that were deleted since are skipped, clusters that vanished are recreated).
Each recorded face carries a fingerprint of its embedding, so a record is never applied to
another face that happens to hold its id (ids are not reused since revision 0003, but
libraries made before it may already hold such faces).

Faces the user labels become ``assignment = confirmed``; a face taken away from a person
(remove, move) is remembered as "not this person" in ``face_rejections`` so it is never
suggested to them again.

Two faces of one photo are never one person: every operation that would give a person a
second face in a photo (name, assign, move, accept, merge) is refused with
:class:`SamePhotoConflict` unless called with ``force=True`` (the CLI offers ``--force``,
the dashboard asks first). Operations that confirm a set of faces take ``left_out``: the
faces the user unticked, remembered as "not this person" in the same operation.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from .db import Library
from .errors import ClusterNotFound, FaceNotFound, InvalidRequest
from .ids import as_id, is_id
from .models import Assignment, Cluster, ClusterRun, Face, FaceRejection, LibraryMeta, Operation, Person, Photo, utcnow
from .queries import clean_name, faces_text, live, people_named, person_by_name, require_person, unowned

MAX_FACES_PER_OP = 100_000
#: assignments that make a face its person's (the rest only suggest)
_OWNED = (Assignment.confirmed, Assignment.auto)


#: same-photo conflicts named in one message (the rest are counted)
_CONFLICTS_SHOWN = 3
#: key prefix of a "these two people are different" answer in ``library_meta``
KEPT_APART = "kept_apart:"


class SamePhotoConflict(InvalidRequest):
    """The operation would give one person two faces of one photo; ``force=True`` does it
    anyway (each front end says how: the CLI's ``--force``, the dashboard's "Do it anyway").
    ``photos`` lists (photo id, photo path, face ids) of each such photo."""

    def __init__(self, message: str, photos: list[tuple[int, str, list[int]]]) -> None:
        super().__init__(message)
        self.photos = photos


@dataclass(frozen=True)
class OperationInfo:
    id: int
    kind: str
    description: str
    created_at: datetime
    undone: bool


# --- recording ------------------------------------------------------------------------------

_FACE_FIELDS = ("person_id", "assignment", "confidence", "cluster_id", "is_face")
_PERSON_FIELDS = ("name", "hidden", "cover_face_id", "birth_date", "created_at")


#: key of the face fingerprint inside a face's recorded state (not a column)
_FINGERPRINT = "_fp"


def face_fingerprint(f: Face) -> str:
    """Which face a record means: its photo and embedding, which a rescan or a new
    photo never reproduce for another face."""
    return f"{f.photo_id}:{hashlib.sha1(f.embedding).hexdigest()[:16]}"


def _dump_value(v: object) -> object:
    if isinstance(v, Assignment):
        return v.value
    if isinstance(v, datetime):
        return "dt:" + v.isoformat()
    if isinstance(v, date):
        return "d:" + v.isoformat()
    return v


def _load_value(v: object) -> object:
    if isinstance(v, str) and v.startswith("dt:"):
        return datetime.fromisoformat(v[3:])
    if isinstance(v, str) and v.startswith("d:"):
        return date.fromisoformat(v[2:])
    return v


class Recorder:
    """Collects the before-state of everything an operation changes; ``save`` writes the
    ``operations`` row. Change rows only through it (or snapshot them first)."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.faces: dict[int, dict] = {}
        self.people: dict[int, dict] = {}
        self.people_deleted: dict[int, dict] = {}
        self.people_created: list[int] = []
        self.rejections_added: list[list[int]] = []
        self.rejections_removed: list[list[int]] = []
        self.clusters_created: list[int] = []
        self.clusters_touched: set[int] = set()
        #: library_meta rows changed: key -> value before (None: there was no row)
        self.meta: dict[str, str | None] = {}

    def face(self, f: Face) -> Face:
        if f.id not in self.faces:
            self.faces[f.id] = {k: _dump_value(getattr(f, k)) for k in _FACE_FIELDS}
            self.faces[f.id][_FINGERPRINT] = face_fingerprint(f)
            if f.cluster_id is not None:
                self.clusters_touched.add(f.cluster_id)
        return f

    def person(self, p: Person) -> Person:
        if p.id not in self.people and p.id not in self.people_created:
            self.people[p.id] = {k: _dump_value(getattr(p, k)) for k in _PERSON_FIELDS}
        return p

    def new_person(self, name: str) -> Person:
        p = Person(name=name)
        self.s.add(p)
        self.s.flush()
        self.people_created.append(p.id)
        return p

    def delete_person(self, p: Person) -> None:
        self.person(p)
        before = self.people.pop(p.id, None)
        self.people_deleted[p.id] = before or {k: _dump_value(getattr(p, k)) for k in _PERSON_FIELDS}
        self.s.delete(p)
        self.s.flush()

    def reject(self, face_id: int, person_id: int) -> None:
        if self.s.get(FaceRejection, (face_id, person_id)) is None:
            self.s.add(FaceRejection(face_id=face_id, person_id=person_id))
            self.rejections_added.append([face_id, person_id])

    def unreject(self, face_id: int, person_id: int) -> None:
        row = self.s.get(FaceRejection, (face_id, person_id))
        if row is not None:
            self.s.delete(row)
            self.rejections_removed.append([face_id, person_id])

    def set_meta(self, key: str, value: str | None) -> None:
        """Write (or with None delete) a ``library_meta`` row, recorded for undo."""
        row = self.s.get(LibraryMeta, key)
        if key not in self.meta:
            self.meta[key] = row.value if row is not None else None
        if value is None:
            if row is not None:
                self.s.delete(row)
        elif row is None:
            self.s.add(LibraryMeta(key=key, value=value))
        else:
            row.value = value

    def new_cluster(self) -> Cluster:
        c = Cluster(run_id=None, size=0)
        self.s.add(c)
        self.s.flush()
        self.clusters_created.append(c.id)
        return c

    def save(self, kind: str, description: str) -> None:
        self.s.flush()
        touched = set(self.clusters_touched) | set(self.clusters_created)
        touched |= {f.cluster_id for f in (self.s.get(Face, i) for i in self.faces) if f is not None and f.cluster_id}
        refresh_cluster_sizes(self.s, touched)
        self.s.add(Operation(kind=kind, description=description, undo={
            "faces": {str(k): v for k, v in self.faces.items()},
            "people": {str(k): v for k, v in self.people.items()},
            "people_deleted": {str(k): v for k, v in self.people_deleted.items()},
            "people_created": self.people_created,
            "rejections_added": self.rejections_added,
            "rejections_removed": self.rejections_removed,
            "clusters_created": self.clusters_created,
            "meta": self.meta,
        }))


def refresh_cluster_sizes(s: Session, cluster_ids: Iterable[int]) -> None:
    """Store each cluster's number of open (unassigned, live) faces in ``Cluster.size``."""
    ids = sorted({i for i in cluster_ids if i is not None})
    if not ids:
        return
    s.flush()
    for a in range(0, len(ids), 500):
        chunk = ids[a:a + 500]
        counts = dict(s.execute(select(Face.cluster_id, func.count(Face.id))
                                .where(Face.cluster_id.in_(chunk), live(), unowned()).group_by(Face.cluster_id)).all())
        present = list(s.scalars(select(Cluster.id).where(Cluster.id.in_(chunk))))
        if present:
            s.execute(update(Cluster), [{"id": cid, "size": int(counts.get(cid, 0))} for cid in present])


# --- validation helpers -----------------------------------------------------------------------

def _face_id_list(face_ids: Sequence[int] | Iterable[int]) -> list[int]:
    if isinstance(face_ids, (str, bytes)) or face_ids is None:
        raise InvalidRequest("face ids must be a list of numbers")
    ids: list[int] = []
    seen: set[int] = set()
    for raw in face_ids:
        fid = as_id(raw, "face id")
        if fid not in seen:
            seen.add(fid)
            ids.append(fid)
    if not ids:
        raise InvalidRequest("no faces given")
    if len(ids) > MAX_FACES_PER_OP:
        raise InvalidRequest(f"at most {MAX_FACES_PER_OP} faces at once")
    return ids


def load_faces(s: Session, face_ids: Sequence[int] | Iterable[int], *, live_only: bool = True) -> list[Face]:
    """The faces with these ids, in order; FaceNotFound naming every unknown id."""
    ids = _face_id_list(face_ids)
    found: dict[int, Face] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found.update({f.id: f for f in s.scalars(select(Face).where(Face.id.in_(chunk)))})
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise FaceNotFound(f"no face with id {shown}")
    if live_only:
        dead = [i for i in ids if not found[i].is_face]
        if dead:
            raise InvalidRequest(f"face {', '.join(map(str, dead[:10]))} was marked as not a face")
    return [found[i] for i in ids]


def _person_for_name(rec: Recorder, name: str) -> tuple[Person, bool]:
    """The person called ``name``, created if there is none (returns created?)."""
    text = clean_name(name)
    person = person_by_name(rec.s, text)
    if person is not None:
        return person, False
    return rec.new_person(text), True


def _confirm(rec: Recorder, faces: list[Face], person: Person) -> None:
    """The user says these faces are ``person``: confirm them, drop any rejection of that
    person for them, remember "not the old person" for faces that belonged to someone else."""
    ids = [f.id for f in faces]
    rejected: set[int] = set()
    for a in range(0, len(ids), 500):
        rejected.update(rec.s.scalars(select(FaceRejection.face_id).where(
            FaceRejection.person_id == person.id, FaceRejection.face_id.in_(ids[a:a + 500]))))
    for f in faces:
        rec.face(f)
        old = f.person_id
        if old is not None and old != person.id:
            rec.reject(f.id, old)
        if f.id in rejected:
            rec.unreject(f.id, person.id)
        f.person_id, f.assignment, f.confidence, f.cluster_id = person.id, Assignment.confirmed, 1.0, None
    _drop_stale_covers(rec, faces)


def _drop_stale_covers(rec: Recorder, faces: list[Face]) -> None:
    ids = [f.id for f in faces]
    for p in rec.s.scalars(select(Person).where(Person.cover_face_id.in_(ids))):
        f = rec.s.get(Face, p.cover_face_id)
        if f is None or f.person_id != p.id or not f.is_face or f.assignment not in _OWNED:
            rec.person(p).cover_face_id = None


# --- two faces of one photo are never one person ----------------------------------------------

def same_photo_conflicts(s: Session, faces: Sequence[Face], person_id: int | None) -> list[tuple[int, str, list[int]]]:
    """The photos where confirming ``faces`` as ``person_id`` would give that person two
    faces: (photo id, path, the face ids there, theirs already first), photo order. Two of
    the given faces in one photo always count; with a person (None: a new one) so does a face
    of the photo the person already has (confirmed or auto)."""
    by_photo: dict[int, list[int]] = {}
    for f in faces:
        by_photo.setdefault(f.photo_id, []).append(f.id)
    given = {f.id for f in faces}
    theirs: dict[int, list[int]] = {}
    if person_id is not None:
        photos = sorted(by_photo)
        for a in range(0, len(photos), 500):
            for fid, photo in s.execute(select(Face.id, Face.photo_id).where(
                    Face.photo_id.in_(photos[a:a + 500]), Face.person_id == person_id,
                    Face.assignment.in_(_OWNED), live()).order_by(Face.id)):
                if fid not in given:
                    theirs.setdefault(photo, []).append(fid)
    out = []
    for photo in sorted(by_photo):
        ids = theirs.get(photo, []) + sorted(by_photo[photo])
        if len(ids) > 1:
            out.append((photo, s.scalar(select(Photo.path).where(Photo.id == photo)) or str(photo), ids))
    return out


def conflict_text(name: str, conflicts: list[tuple[int, str, list[int]]]) -> str:
    """One line naming the photos where ``name`` would have two faces."""
    shown = "; ".join(f"{path} (faces {', '.join(map(str, ids))})" for _p, path, ids in conflicts[:_CONFLICTS_SHOWN])
    more = f" and {len(conflicts) - _CONFLICTS_SHOWN} more photos" if len(conflicts) > _CONFLICTS_SHOWN else ""
    which = "one photo" if len(conflicts) == 1 else f"{len(conflicts)} photos"
    return (f"{name} would have two faces in {which}: {shown}{more}; two faces of one photo are "
            "never one person")


def check_same_photo(s: Session, faces: Sequence[Face], person: Person | None, name: str, force: bool) -> None:
    """SamePhotoConflict unless ``force``: see :func:`same_photo_conflicts`."""
    if force:
        return
    conflicts = same_photo_conflicts(s, faces, person.id if person is not None else None)
    if conflicts:
        raise SamePhotoConflict(conflict_text(name, conflicts), conflicts)


def _leave_out(rec: Recorder, faces: list[Face], person: Person) -> None:
    """The user unticked these faces when confirming others as ``person``: remember "not
    this person"; a machine assignment or suggestion of that person is dropped, and the face
    leaves its group (it waits among the unassigned faces, see :mod:`organizer.stacks`)."""
    mine = [f.id for f in faces if f.person_id == person.id and f.assignment == Assignment.confirmed]
    if mine:
        raise InvalidRequest(f"face {', '.join(map(str, mine[:10]))} is confirmed as {person.name}; "
                             "remove it instead")
    for f in faces:
        rec.face(f)
        rec.reject(f.id, person.id)
        if f.person_id == person.id:
            f.person_id, f.assignment, f.confidence = None, None, None
        f.cluster_id = None


def _split_left_out(s: Session, face_ids: Sequence[int], left_out: Sequence[int] | Iterable[int]
                    ) -> tuple[list[Face], list[Face]]:
    """(faces to confirm, faces left out), both loaded; a face in both is refused."""
    take = load_faces(s, face_ids)
    out_ids = list(left_out or ())
    leave = load_faces(s, out_ids) if out_ids else []
    both = sorted({f.id for f in take} & {f.id for f in leave})
    if both:
        raise InvalidRequest(f"face {', '.join(map(str, both[:10]))} is both ticked and left out")
    return take, leave


# --- operations -----------------------------------------------------------------------------

def name_cluster(lib: Library, cluster_id: int, name: str, *, left_out: Sequence[int] = (),
                 force: bool = False) -> int:
    """Name every unnamed face of a cluster ("It's <name>"; faces the user rejected for that
    person are left in the cluster). An existing name adds the faces to that person. Faces in
    ``left_out`` (unticked) are remembered as "not this person" and leave the group, in the
    same operation. SamePhotoConflict, unless ``force``, when two of the faces are in one
    photo or the person already has a face in one of their photos. Returns the person id."""
    with lib.session() as s:
        rec = Recorder(s)
        cluster = s.get(Cluster, cluster_id) if is_id(cluster_id) else None
        if cluster is None:
            raise ClusterNotFound(f"there is no cluster with id {cluster_id}")
        text = clean_name(name)
        faces = list(s.scalars(select(Face).where(Face.cluster_id == cluster_id, live(), unowned()).order_by(Face.id)))
        if not faces:
            raise InvalidRequest(f"cluster {cluster_id} has no unnamed faces left")
        unticked = set(_face_id_list(left_out)) if left_out else set()
        strangers = sorted(unticked - {f.id for f in faces})
        if strangers:
            raise InvalidRequest(f"face {', '.join(map(str, strangers[:10]))} is not an unnamed face "
                                 f"of cluster {cluster_id}")
        person, created = _person_for_name(rec, text)
        rejected = set(s.scalars(select(FaceRejection.face_id).where(
            FaceRejection.person_id == person.id, FaceRejection.face_id.in_([f.id for f in faces]))))
        take = [f for f in faces if f.id not in rejected and f.id not in unticked]
        if not take:
            raise InvalidRequest(f"you said every face of cluster {cluster_id} is not {person.name}")
        check_same_photo(s, take, None if created else person, person.name, force)
        _confirm(rec, take, person)
        _leave_out(rec, [f for f in faces if f.id in unticked], person)
        rec.clusters_touched.add(cluster_id)
        extra = " (new person)" if created else ""
        left = f", {faces_text(len(unticked))} left out" if unticked else ""
        rec.save("name_cluster", f"named cluster {cluster_id} as {person.name}{extra}: {faces_text(len(take))}{left}")
        return person.id


def assign_faces(lib: Library, face_ids: Sequence[int], name: str, *, left_out: Sequence[int] = (),
                 force: bool = False) -> int:
    """Confirm these faces as ``name`` (created if new); ``left_out`` (the unticked faces of
    a stack, say) are remembered as "not this person" in the same operation.
    SamePhotoConflict unless ``force`` (see :func:`same_photo_conflicts`). Returns the person id."""
    return _confirm_as(lib, face_ids, name, "assign", "assigned", left_out=left_out, force=force)


def _confirm_as(lib: Library, face_ids: Sequence[int], name: str, kind: str, verb: str, *,
                left_out: Sequence[int] = (), force: bool = False) -> int:
    """Assign and move: one transaction that confirms the faces as ``name``, recorded as
    operation ``kind`` (what undo and the history show)."""
    with lib.session() as s:
        rec = Recorder(s)
        faces, leave = _split_left_out(s, face_ids, left_out)
        text = clean_name(name)
        existing = person_by_name(s, text)
        check_same_photo(s, faces, existing, existing.name if existing is not None else text, force)
        person, created = _person_for_name(rec, text)
        _confirm(rec, faces, person)
        _leave_out(rec, leave, person)
        extra = " (new person)" if created else ""
        left = f", {faces_text(len(leave))} left out" if leave else ""
        rec.save(kind, f"{verb} {faces_text(len(faces))} to {person.name}{extra}{left}")
        return person.id


def rename_person(lib: Library, person_id: int, new_name: str) -> None:
    """Give a person another name; InvalidRequest if another person has it (merge instead)."""
    with lib.session() as s:
        rec = Recorder(s)
        person = require_person(s, person_id)
        text = clean_name(new_name)
        other = next((p for p in people_named(s, text) if p.id != person.id), None)
        if other is not None:
            raise InvalidRequest(f"there is already a person named {other.name}; merge the two instead")
        if text == person.name:
            raise InvalidRequest(f"{person.name} already has that name")
        old = person.name
        rec.person(person).name = text
        rec.save("rename", f"renamed {old} to {text}")


def merge_people(lib: Library, source_id: int, target_id: int, *, force: bool = False) -> None:
    """Everything of ``source`` goes to ``target`` and ``source`` disappears: faces (keeping
    how each was assigned), "not this person" answers, and cover/birth date where the target
    has none. SamePhotoConflict, unless ``force``, when both have a face (confirmed or auto)
    in one photo: two people seen side by side are not one person."""
    with lib.session() as s:
        rec = Recorder(s)
        source = require_person(s, source_id)
        target = require_person(s, target_id)
        if source.id == target.id:
            raise InvalidRequest("cannot merge a person into themselves")
        faces = list(s.scalars(select(Face).where(Face.person_id == source.id)))
        if not force:
            shared = _photos_of_both(s, source.id, target.id)
            if shared:
                shown = "; ".join(f"{path} (faces {', '.join(map(str, ids))})"
                                  for _p, path, ids in shared[:_CONFLICTS_SHOWN])
                more = f" and {len(shared) - _CONFLICTS_SHOWN} more" if len(shared) > _CONFLICTS_SHOWN else ""
                raise SamePhotoConflict(
                    f"{source.name} and {target.name} are both in {len(shared)} photo{'s' if len(shared) > 1 else ''}: "
                    f"{shown}{more}; two faces of one photo are never one person", shared)
        for f in faces:
            rec.face(f).person_id = target.id
        target_faces = set(s.scalars(select(Face.id).where(Face.person_id == target.id,
                                                           Face.assignment == Assignment.confirmed)))
        for f in faces:
            if f.assignment == Assignment.confirmed:
                rec.unreject(f.id, target.id)
        for face_id in list(s.scalars(select(FaceRejection.face_id).where(FaceRejection.person_id == source.id))):
            rec.unreject(face_id, source.id)
            if face_id not in target_faces:
                rec.reject(face_id, target.id)
        rec.person(target)
        if target.cover_face_id is None and source.cover_face_id is not None:
            target.cover_face_id = source.cover_face_id
        if target.birth_date is None and source.birth_date is not None:
            target.birth_date = source.birth_date
        s.flush()
        rec.delete_person(source)
        rec.save("merge", f"merged {source.name} into {target.name}: {faces_text(len(faces))}")


def _photos_of_both(s: Session, a: int, b: int) -> list[tuple[int, str, list[int]]]:
    """Photos where people ``a`` and ``b`` both have a face (confirmed or auto): (photo id,
    path, those faces)."""
    rows = list(s.execute(select(Face.photo_id, Face.id, Face.person_id).where(
        Face.person_id.in_([a, b]), Face.assignment.in_(_OWNED), live()).order_by(Face.photo_id, Face.id)))
    per: dict[int, list[tuple[int, int | None]]] = {}
    for photo, fid, pid in rows:
        per.setdefault(photo, []).append((fid, pid))
    out = []
    for photo, got in per.items():
        if {pid for _f, pid in got} == {a, b}:
            path = s.scalar(select(Photo.path).where(Photo.id == photo)) or str(photo)
            out.append((photo, path, [f for f, _p in got]))
    return out


def set_hidden(lib: Library, person_id: int, hidden: bool) -> None:
    """Hide a person from the people list (their faces stay theirs), or show them again."""
    with lib.session() as s:
        rec = Recorder(s)
        person = require_person(s, person_id)
        if bool(person.hidden) == bool(hidden):
            raise InvalidRequest(f"{person.name} is already {'hidden' if hidden else 'shown'}")
        rec.person(person).hidden = bool(hidden)
        rec.save("hide" if hidden else "unhide", f"{'hid' if hidden else 'showed'} {person.name}")


def set_cover(lib: Library, person_id: int, face_id: int) -> None:
    """Use one of the person's own faces as their cover picture."""
    with lib.session() as s:
        rec = Recorder(s)
        person = require_person(s, person_id)
        face = load_faces(s, [face_id])[0]
        if face.person_id != person.id or face.assignment not in (Assignment.confirmed, Assignment.auto):
            raise InvalidRequest(f"face {face.id} is not one of {person.name}'s faces")
        rec.person(person).cover_face_id = face.id
        rec.save("cover", f"set the cover of {person.name} to face {face.id}")


#: what a user types for "birth date not known" (any case)
UNKNOWN_DATE = ("", "none", "unknown", "-")


def parse_birth_date(text: str | None) -> date | None:
    """A birth date as a user types it: YYYY-MM-DD, or None for one of
    :data:`UNKNOWN_DATE` (clears it); InvalidRequest with an example otherwise."""
    text = (text or "").strip()
    if text.lower() in UNKNOWN_DATE:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{text!r} is not a date; write it as YYYY-MM-DD, e.g. 2015-06-30 "
                             "(or 'none' to clear it)") from None


def set_birth_date(lib: Library, person_id: int, birth: date | None) -> None:
    """Set (or clear, with None) a person's birth date; a date in the future is refused."""
    with lib.session() as s:
        rec = Recorder(s)
        person = require_person(s, person_id)
        if birth is not None:
            if isinstance(birth, datetime) or not isinstance(birth, date):
                raise InvalidRequest("a birth date must be a date (YYYY-MM-DD)")
            if birth > utcnow().date():
                raise InvalidRequest(f"{birth.isoformat()} is in the future")
        rec.person(person).birth_date = birth
        text = birth.isoformat() if birth else "unknown"
        rec.save("birth_date", f"set the birth date of {person.name} to {text}")


def remove_faces(lib: Library, face_ids: Sequence[int]) -> None:
    """Take faces away from their person: they become unassigned (no cluster until the next
    clustering) and are remembered as "not this person"."""
    with lib.session() as s:
        rec = Recorder(s)
        faces = load_faces(s, face_ids)
        orphans = [f.id for f in faces if f.person_id is None]
        if orphans:
            raise InvalidRequest(f"face {', '.join(map(str, orphans[:10]))} does not belong to anyone")
        names = set()
        for f in faces:
            rec.face(f)
            rec.reject(f.id, as_id(f.person_id))
            names.add(f.person.name if f.person else str(f.person_id))
            f.person_id, f.assignment, f.confidence, f.cluster_id = None, None, None, None
        _drop_stale_covers(rec, faces)
        rec.save("remove", f"removed {faces_text(len(faces))} from {', '.join(sorted(names))}")


def move_faces(lib: Library, face_ids: Sequence[int], name: str, *, force: bool = False) -> int:
    """Confirm faces as another person (created if new); the person they left is
    remembered as "not this person" (by the shared confirm step). SamePhotoConflict unless
    ``force`` (see :func:`same_photo_conflicts`). Returns the person id."""
    return _confirm_as(lib, face_ids, name, "move", "moved", force=force)


def mark_not_face(lib: Library, face_ids: Sequence[int]) -> None:
    """These detections are not faces: excluded from people, clusters and suggestions."""
    with lib.session() as s:
        rec = Recorder(s)
        faces = load_faces(s, face_ids)
        for f in faces:
            rec.face(f)
            f.is_face, f.person_id, f.assignment, f.confidence, f.cluster_id = False, None, None, None, None
        _drop_stale_covers(rec, faces)
        rec.save("not_face", f"marked {faces_text(len(faces))} as not a face")


def split_faces(lib: Library, face_ids: Sequence[int]) -> int:
    """Put these faces in a new group of their own (re-clustering leaves a group made this
    way alone). Confirmed faces cannot be split off: remove or move them instead. Returns the
    new cluster id."""
    with lib.session() as s:
        rec = Recorder(s)
        faces = load_faces(s, face_ids)
        confirmed = [f.id for f in faces if f.assignment == Assignment.confirmed and f.person_id is not None]
        if confirmed:
            raise InvalidRequest(f"face {', '.join(map(str, confirmed[:10]))} is confirmed for a person; "
                                 "remove or move it instead")
        cluster = _into_new_group(rec, faces)
        rec.save("split", f"split {faces_text(len(faces))} into new cluster {cluster.id}")
        return cluster.id


@dataclass(frozen=True)
class SetAside:
    """What :func:`set_aside_faces` did."""

    #: the new group the faces wait in
    cluster_id: int
    faces: int
    #: the groups they were taken out of (none for faces that were in no group)
    from_clusters: list[int]


def set_aside_faces(lib: Library, face_ids: Sequence[int]) -> SetAside:
    """Take faces that belong to nobody out of their group ("these do not belong here").

    There is no "kept apart from group X" record, and a face left without a group would be
    put back by the next clustering, so the faces wait in a new group of their own, made by
    the user (which re-clustering leaves alone) until they are named; a pending suggestion
    is dropped. Faces that belong to a person are refused: remove or move them instead."""
    with lib.session() as s:
        rec = Recorder(s)
        faces = load_faces(s, face_ids)
        theirs = [f.id for f in faces if f.person_id is not None and f.assignment in _OWNED]
        if theirs:
            raise InvalidRequest(f"face {', '.join(map(str, theirs[:10]))} belongs to a person; "
                                 "remove or move it instead")
        old = sorted({f.cluster_id for f in faces if f.cluster_id is not None})
        cluster = _into_new_group(rec, faces)
        where = f" from cluster {', '.join(map(str, old))}" if old else ""
        rec.save("set_aside", f"set aside {faces_text(len(faces))}{where} into new cluster {cluster.id}")
        return SetAside(cluster_id=cluster.id, faces=len(faces), from_clusters=old)


def _into_new_group(rec: Recorder, faces: list[Face]) -> Cluster:
    """Move faces, unassigned, into a new user-made group (split and set aside)."""
    cluster = rec.new_cluster()
    for f in faces:
        rec.face(f)
        f.person_id, f.assignment, f.confidence, f.cluster_id = None, None, None, cluster.id
    _drop_stale_covers(rec, faces)
    return cluster


def accept_faces(s: Session, faces: list[Face], person: Person, *, left_out: Sequence[Face] = (),
                 force: bool = False) -> Recorder:
    """Shared by the suggestions and batch questions: confirm ``faces`` and remember "not
    this person" for ``left_out`` inside the caller's transaction (SamePhotoConflict unless
    ``force``). The caller saves the returned recorder."""
    both = sorted({f.id for f in faces} & {f.id for f in left_out})
    if both:
        raise InvalidRequest(f"face {', '.join(map(str, both[:10]))} is both ticked and left out")
    check_same_photo(s, faces, person, person.name, force)
    rec = Recorder(s)
    _confirm(rec, faces, person)
    _leave_out(rec, list(left_out), person)
    return rec


def keep_apart(lib: Library, person_a: int, person_b: int) -> None:
    """The user says two people are different ("Same person?" - "different"): never asked
    about again (:func:`kept_apart`). Stored in ``library_meta``, undoable."""
    with lib.session() as s:
        a, b = require_person(s, person_a), require_person(s, person_b)
        if a.id == b.id:
            raise InvalidRequest("a person is never different from themselves")
        lo, hi = sorted((a.id, b.id))
        key = f"{KEPT_APART}{lo}:{hi}"
        if s.get(LibraryMeta, key) is not None:
            raise InvalidRequest(f"you already said {a.name} and {b.name} are different people")
        rec = Recorder(s)
        rec.set_meta(key, utcnow().isoformat())
        rec.save("keep_apart", f"{a.name} and {b.name} are different people")


def kept_apart(s: Session) -> set[tuple[int, int]]:
    """Every (lower id, higher id) pair of people the user said are different."""
    out = set()
    for key in s.scalars(select(LibraryMeta.key).where(LibraryMeta.key.like(f"{KEPT_APART}%"))):
        lo, _sep, hi = key[len(KEPT_APART):].partition(":")
        if lo.isdigit() and hi.isdigit():
            out.add((int(lo), int(hi)))
    return out


# --- undo -------------------------------------------------------------------------------------

def undo(lib: Library, steps: int = 1) -> list[str]:
    """Undo the last ``steps`` operations that are not undone yet, newest first, in one
    transaction. Returns their descriptions (empty when there is nothing to undo)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidRequest("the number of steps to undo must be 1 or more")
    with lib.session() as s:
        ops = list(s.scalars(select(Operation).where(Operation.undone.is_(False))
                             .order_by(Operation.id.desc()).limit(steps)))
        done = []
        for op in ops:
            skipped = _revert(s, op.undo or {}, op.created_at)
            op.undone = True
            note = f" ({faces_text(skipped)} changed since and left as they are)" if skipped else ""
            done.append(op.description + note)
            s.flush()
        return done


def _stale_faces(s: Session, data: dict, made_at: datetime | None) -> set[int]:
    """Face ids of the record that now hold another face: the fingerprint differs, or (in
    records from before fingerprints) the face row is younger than the operation."""
    ids = {int(k) for k in data.get("faces") or {}}
    ids |= {int(pair[0]) for key in ("rejections_added", "rejections_removed") for pair in data.get(key) or []}
    stale = set()
    for fid in ids:
        f = s.get(Face, fid)
        if f is None:
            continue
        fp = ((data.get("faces") or {}).get(str(fid)) or {}).get(_FINGERPRINT)
        if fp is not None:
            if fp != face_fingerprint(f):
                stale.add(fid)
        elif made_at is not None and f.created_at is not None and f.created_at > made_at:
            stale.add(fid)
    return stale


def _stale_person(p: Person, made_at: datetime | None) -> bool:
    """A person row younger than the operation is somebody else who got a freed id."""
    return made_at is not None and p.created_at is not None and p.created_at > made_at


def _revert(s: Session, data: dict, made_at: datetime | None = None) -> int:
    """Put back what ``data`` recorded; returns how many recorded faces were left alone
    because their id now holds another face."""
    touched: set[int] = set()
    stale = _stale_faces(s, data, made_at)
    for pid, fields in (data.get("people_deleted") or {}).items():
        if s.get(Person, int(pid)) is None:
            values = {k: _load_value(v) for k, v in fields.items()}
            cover = as_id(values.pop("cover_face_id")) if values.get("cover_face_id") is not None else None
            restored = Person(id=int(pid), **values)
            s.add(restored)
            s.flush()
            if cover is not None and cover not in stale and s.get(Face, cover) is not None:
                restored.cover_face_id = cover
    s.flush()
    for pid, fields in (data.get("people") or {}).items():
        p = s.get(Person, int(pid))
        if p is None or _stale_person(p, made_at):
            continue
        for k, v in fields.items():
            v = _load_value(v)
            if k == "cover_face_id" and v is not None and (v in stale or s.get(Face, v) is None):
                v = None
            setattr(p, k, v)
    for face_id, person_id in data.get("rejections_removed") or []:
        if face_id not in stale and s.get(Face, face_id) is not None and s.get(Person, person_id) is not None \
                and s.get(FaceRejection, (face_id, person_id)) is None:
            s.add(FaceRejection(face_id=face_id, person_id=person_id))
    for face_id, person_id in data.get("rejections_added") or []:
        if face_id not in stale:
            s.execute(delete(FaceRejection).where(FaceRejection.face_id == face_id,
                                                  FaceRejection.person_id == person_id))
    s.flush()
    latest_run = s.scalar(select(func.max(ClusterRun.id)))
    for fid, fields in (data.get("faces") or {}).items():
        f = s.get(Face, int(fid))
        if f is None or f.id in stale:
            continue
        if f.cluster_id is not None:
            touched.add(f.cluster_id)
        for k, v in fields.items():
            if k == _FINGERPRINT:
                continue
            if k == "assignment":
                v = Assignment(v) if v is not None else None
            elif k == "person_id" and v is not None and s.get(Person, v) is None:
                v = None
            elif k == "cluster_id" and v is not None:
                if s.get(Cluster, v) is None:
                    s.add(Cluster(id=v, run_id=latest_run, size=0))
                    s.flush()
                touched.add(v)
            setattr(f, k, v)
    s.flush()
    for pid in data.get("people_created") or []:
        created = s.get(Person, pid)
        if created is not None and not _stale_person(created, made_at):
            s.delete(created)
    for cid in data.get("clusters_created") or []:
        touched.discard(cid)
        if s.scalar(select(func.count(Face.id)).where(Face.cluster_id == cid)) == 0:
            c = s.get(Cluster, cid)
            if c is not None:
                s.delete(c)
    for key, value in (data.get("meta") or {}).items():
        row = s.get(LibraryMeta, key)
        if value is None:
            if row is not None:
                s.delete(row)
        elif row is None:
            s.add(LibraryMeta(key=key, value=value))
        else:
            row.value = value
    s.flush()
    refresh_cluster_sizes(s, touched)
    return len(stale)


def history(lib: Library, limit: int = 20) -> list[OperationInfo]:
    """The most recent operations, newest first (undone ones included, flagged)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidRequest("limit must be 1 or more")
    with lib.session() as s:
        return [OperationInfo(id=o.id, kind=o.kind, description=o.description, created_at=o.created_at,
                              undone=bool(o.undone))
                for o in s.scalars(select(Operation).order_by(Operation.id.desc()).limit(limit))]


__all__ = [
    "OperationInfo", "name_cluster", "assign_faces", "rename_person", "merge_people", "set_hidden",
    "set_cover", "parse_birth_date", "set_birth_date", "remove_faces", "move_faces", "mark_not_face",
    "split_faces", "SetAside", "set_aside_faces", "undo", "history", "SamePhotoConflict",
    "same_photo_conflicts", "check_same_photo", "accept_faces", "keep_apart", "kept_apart", "KEPT_APART",
]
