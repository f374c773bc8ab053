"""What keeps a face away from a person or a group: the facts every machine decision
(clustering, auto-assignment, suggestions) must respect.

* **Same photo**: two faces of one photo are never one person. :func:`people_in_photos`
  says who already owns a face (confirmed or auto-assigned) in each photo.
* **Kept apart by the user**: a *split* or *set aside* says "these faces are not with the
  ones they were grouped with". Each such operation is remembered as two sides
  (:class:`KeptApart`): no group holds faces of both sides, and no face of one side is given
  by the machine to a person who owns a face of the other side. Undoing the operation
  undoes the constraint (records of undone operations are ignored).
* **Born after the photo**: nobody is in a photo taken before they were born
  (:func:`born_after`), and children's faces change fast (:func:`age_at`).

How a split is remembered: the operation's undo record names the faces split off and the
groups they came from; the faces still in those groups when the split is first seen are the
other side. :func:`new_split_records` derives that (read-only) and clustering stores it in
``library_meta`` (key ``split_apart:<operation id>``, a JSON object ``{"split": [...],
"rest": [...]}``) in its write transaction, so later runs know the sides even after the
groups changed. A front end that calls :func:`split_record` right after a split (with the
operation's id) records it exactly; clustering only derives the ones nobody recorded.

No transactions are opened here: every function takes the caller's session.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Assignment, Face, LibraryMeta, Operation, Person, Photo
from .queries import live

#: key prefix in ``library_meta`` of the two sides of a split / set aside
SPLIT_APART = "split_apart:"
#: operations that keep faces apart from the group they were in
APART_KINDS = ("split", "set_aside")
#: machine assignments that make a face its person's (for the same-photo rule)
OWNING = (Assignment.confirmed, Assignment.auto)


# --- same photo -------------------------------------------------------------------------------

def people_in_photos(s: Session, photo_ids: Iterable[int] | None = None) -> dict[int, set[int]]:
    """{photo id: people who own a face in it (confirmed or auto-assigned)}; all photos
    when ``photo_ids`` is None. Faces marked "not a face" do not count."""
    query = select(Face.photo_id, Face.person_id).where(
        live(), Face.person_id.is_not(None), Face.assignment.in_(OWNING))
    wanted = None if photo_ids is None else set(photo_ids)
    out: dict[int, set[int]] = {}
    if wanted is not None and len(wanted) <= 500:
        query = query.where(Face.photo_id.in_(wanted))
    for photo, person in s.execute(query):
        if person is not None and (wanted is None or photo in wanted):
            out.setdefault(photo, set()).add(person)
    return out


# --- dates ------------------------------------------------------------------------------------

def born_after(birth: date | None, taken: datetime | None) -> bool:
    """True when a photo taken at ``taken`` is from before ``birth`` (so the person cannot be
    in it). Unknown dates never exclude anyone."""
    return birth is not None and taken is not None and taken.date() < birth


def age_at(birth: date | None, taken: datetime | None) -> float | None:
    """Age in years at the photo's date, None when either date is unknown."""
    if birth is None or taken is None:
        return None
    return (taken.date() - birth).days / 365.25


def birth_dates(s: Session) -> dict[int, date]:
    """{person id: birth date} of the people who have one."""
    return {pid: born for pid, born in s.execute(select(Person.id, Person.birth_date)) if born is not None}


def photo_dates(s: Session, photo_ids: Iterable[int]) -> dict[int, tuple[datetime | None, str | None]]:
    """{photo id: (taken_at, taken_at_source)}: the EXIF capture time ("exif") or the file's
    modification time ("file")."""
    wanted = set(photo_ids)
    return {pid: (taken, source) for pid, taken, source in s.execute(
        select(Photo.id, Photo.taken_at, Photo.taken_at_source)) if pid in wanted}


# --- kept apart -------------------------------------------------------------------------------

def split_record(operation_id: int, split: Iterable[int], rest: Iterable[int]) -> tuple[str, str]:
    """The ``library_meta`` (key, value) that remembers one split: the faces split off and
    the faces they were taken away from."""
    return (f"{SPLIT_APART}{operation_id}",
            json.dumps({"split": sorted(set(split)), "rest": sorted(set(rest))}))


def new_split_records(s: Session) -> list[tuple[str, str]]:
    """(key, value) for each split or set aside not recorded yet and not undone: the faces
    it took out of their groups against the live faces still in those groups now."""
    recorded = {key for key in s.scalars(select(LibraryMeta.key).where(LibraryMeta.key.startswith(SPLIT_APART)))}
    out = []
    for op_id, data in s.execute(select(Operation.id, Operation.undo).where(
            Operation.kind.in_(APART_KINDS), Operation.undone.is_(False)).order_by(Operation.id)):
        if f"{SPLIT_APART}{op_id}" in recorded:
            continue
        faces = (data or {}).get("faces") or {}
        split = {int(fid) for fid in faces}
        groups = {int(v["cluster_id"]) for v in faces.values() if v.get("cluster_id") is not None}
        rest: set[int] = set()
        if groups:
            rest = set(s.scalars(select(Face.id).where(live(), Face.cluster_id.in_(groups)))) - split
        out.append(split_record(op_id, split, rest))
    return out


def load_split_records(s: Session) -> list[tuple[frozenset[int], frozenset[int]]]:
    """The two sides of every remembered split whose operation is not undone."""
    undone = set(s.scalars(select(Operation.id).where(Operation.undone.is_(True))))
    out = []
    for key, value in s.execute(select(LibraryMeta.key, LibraryMeta.value).where(
            LibraryMeta.key.startswith(SPLIT_APART))):
        try:
            op_id = int(key[len(SPLIT_APART):])
            data = json.loads(value)
            sides = (frozenset(int(f) for f in data["split"]), frozenset(int(f) for f in data["rest"]))
        except (ValueError, KeyError, TypeError):
            continue  # not written by us: ignore rather than refuse to cluster
        if op_id not in undone and sides[0] and sides[1]:
            out.append(sides)
    return out


@dataclass
class KeptApart:
    """The sides of the remembered splits, and who owns faces on each side.

    Linear in the number of faces named by the records: a split of 1,000 faces from a group
    of 1,000 is two sets, not a million pairs."""

    records: list[tuple[frozenset[int], frozenset[int]]] = field(default_factory=list)
    #: face id -> [(record index, side 0/1)]
    where: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    #: (record index, side) -> people owning a face of that side (confirmed or auto)
    owners: dict[tuple[int, int], set[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, records: list[tuple[frozenset[int], frozenset[int]]], owner_of: dict[int, int]) -> KeptApart:
        """``owner_of``: face id -> person, for faces owned (confirmed or auto)."""
        kept = cls(records=records)
        for r, sides in enumerate(records):
            for side, faces in enumerate(sides):
                kept.owners[(r, side)] = {owner_of[f] for f in faces if f in owner_of}
                for f in faces:
                    kept.where.setdefault(f, []).append((r, side))
        return kept

    def allows(self, face_id: int, person_id: int) -> bool:
        """May the machine give this face to this person (nobody on the other side is theirs)?"""
        return all(person_id not in self.owners[(r, 1 - side)] for r, side in self.where.get(face_id, ()))

    def take(self, face_id: int, person_id: int) -> None:
        """The machine gave this face to this person: the other sides now keep them out."""
        for r, side in self.where.get(face_id, ()):
            self.owners[(r, side)].add(person_id)

    def separate(self, face_ids: list[int], labels: list[int]) -> list[int]:
        """Labels (-1 = ungrouped) with no group holding faces of both sides of a record: in
        such a group the side with fewer faces there leaves it (ties: the split side)."""
        out = list(labels)
        pos = {f: i for i, f in enumerate(face_ids)}
        for a, b in self.records:
            for lab in {out[pos[f]] for f in a if f in pos} & {out[pos[f]] for f in b if f in pos} - {-1}:
                in_a = [pos[f] for f in a if f in pos and out[pos[f]] == lab]
                in_b = [pos[f] for f in b if f in pos and out[pos[f]] == lab]
                for i in (in_a if len(in_a) <= len(in_b) else in_b):
                    out[i] = -1
        return out


__all__ = ["APART_KINDS", "OWNING", "SPLIT_APART", "KeptApart", "age_at", "birth_dates", "born_after",
           "load_split_records", "new_split_records", "people_in_photos", "photo_dates", "split_record"]
