"""Read-only, paginated queries for the front ends (CLI and dashboard).

Nothing here writes, and nothing here returns an embedding: results are small dataclasses
a page can render directly.

What counts as whose face:

* a face *belongs to* a person when ``person_id`` is set and ``assignment`` is
  ``confirmed`` (the user said so) or ``auto`` (the machine was very sure);
* a face with ``assignment == suggested`` carries a *pending* suggestion only: it is still
  unassigned, shown in its cluster and in :func:`unassigned_faces`, never in the person's
  counts;
* a face the user marked "not a face" (``is_face`` False) is excluded everywhere.

Clusters are groups of unassigned faces: naming a cluster moves its faces to the person and
empties it, so :func:`list_clusters` only ever shows work still to do.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, distinct, func, select, tuple_
from sqlalchemy.orm import Session

from .db import Library
from .errors import ClusterNotFound, InvalidRequest, NotFound
from .ids import as_id, is_id
from .models import Assignment, Cluster, Face, FaceThumb, Person, Photo, PhotoStatus
from .queries import live, normalise_name, owned, require_person, resolve_person, unowned

MAX_PAGE = 5000
CLUSTER_PREVIEW = 12


@dataclass(frozen=True)
class PersonSummary:
    id: int
    name: str
    hidden: bool
    face_count: int
    photo_count: int
    #: the chosen cover, else the person's best-quality face (None when they have no face)
    cover_face_id: int | None
    birth_date: date | None
    #: faces the user confirmed (the rest of face_count were auto-assigned)
    confirmed_count: int = 0
    #: True when cover_face_id was chosen by the user
    cover_chosen: bool = False


@dataclass(frozen=True)
class ClusterSummary:
    id: int
    size: int
    #: up to 12 of its faces, best quality first (for a preview strip)
    face_ids: list[int]
    #: the named person the machine thinks this group is, when it has a suggestion
    suggested_person_id: int | None = None
    suggested_person_name: str | None = None
    confidence: float | None = None
    #: True for a group the user made with "split" (re-clustering leaves it alone)
    user_made: bool = False


@dataclass(frozen=True)
class FaceInfo:
    id: int
    photo_id: int
    photo_path: str
    box: tuple[int, int, int, int]
    person_id: int | None
    person_name: str | None
    assignment: str | None
    confidence: float | None
    cluster_id: int | None
    quality: float
    is_face: bool = True


@dataclass(frozen=True)
class PhotoInfo:
    id: int
    path: str
    width: int | None
    height: int | None
    taken_at: datetime | None
    status: str
    faces: int = 0
    error: str | None = None


# --- helpers ------------------------------------------------------------------------------

def _page(limit: int, offset: int) -> tuple[int, int]:
    if limit < 0 or offset < 0:
        raise InvalidRequest("limit and offset must be 0 or more")
    return min(int(limit), MAX_PAGE), int(offset)


#: a select of faces with the 14 columns _face_infos reads, in its order (past ten columns
#: SQLAlchemy types the rest of a row as Any)
_FaceRows = Select[*tuple[Any, ...]]


def _face_query() -> _FaceRows:
    return (select(Face.id, Face.photo_id, Photo.path, Face.top, Face.right, Face.bottom, Face.left,
                   Face.person_id, Person.name, Face.assignment, Face.confidence, Face.cluster_id,
                   Face.quality, Face.is_face)
            .join(Photo, Photo.id == Face.photo_id)
            .outerjoin(Person, Person.id == Face.person_id))


def _face_infos(s: Session, query: _FaceRows) -> list[FaceInfo]:
    out = []
    for (fid, pid, path, top, right, bottom, left, person_id, person_name, assignment,
         confidence, cluster_id, quality, is_face) in s.execute(query):
        out.append(FaceInfo(
            id=fid, photo_id=pid, photo_path=path, box=(top, right, bottom, left),
            person_id=person_id, person_name=person_name,
            assignment=assignment.value if assignment is not None else None,
            confidence=confidence, cluster_id=cluster_id, quality=float(quality or 0.0),
            is_face=bool(is_face)))
    return out


def _person_counts(whose: ColumnElement[bool]) -> Select[int | None, int, int, int, float]:
    """Per person matching ``whose``: faces, photos, confirmed faces, best face quality."""
    return (select(Face.person_id, func.count(), func.count(distinct(Face.photo_id)),
                   func.count(case((Face.assignment == Assignment.confirmed, 1))), func.max(Face.quality))
            .where(whose, Face.assignment.in_([Assignment.confirmed, Assignment.auto]), live())
            .group_by(Face.person_id))


def _summaries(s: Session, people: list[Person]) -> list[PersonSummary]:
    """Counts and covers of these people: one pass over the covering index
    ``ix_faces_person_quality`` (no table rows read), then one index seek per person for
    the cover when they have not chosen one."""
    if not people:
        return []
    ids = [p.id for p in people]
    whose = Face.person_id.in_(ids) if len(ids) <= 500 else Face.person_id.is_not(None)
    counts = {pid: (n, photos, confirmed, best_quality)
              for pid, n, photos, confirmed, best_quality in s.execute(_person_counts(whose))}
    # the best-quality face (ties: lowest id) of each person without a chosen cover
    need_cover = [(p.id, counts[p.id][3]) for p in people if p.cover_face_id is None and p.id in counts]
    best: dict[int, int] = {}
    for a in range(0, len(need_cover), 400):
        best.update((as_id(pid), fid) for pid, fid in s.execute(
            select(Face.person_id, func.min(Face.id))
            .where(tuple_(Face.person_id, Face.quality).in_(need_cover[a:a + 400]), live(), owned())
            .group_by(Face.person_id)).all())
    out = []
    for p in people:
        n, photos, confirmed, _q = counts.get(p.id, (0, 0, 0, 0.0))
        out.append(PersonSummary(
            id=p.id, name=p.name, hidden=bool(p.hidden), face_count=int(n), photo_count=int(photos),
            cover_face_id=p.cover_face_id if p.cover_face_id is not None else best.get(p.id),
            birth_date=p.birth_date, confirmed_count=int(confirmed or 0),
            cover_chosen=p.cover_face_id is not None))
    return out


# --- people -------------------------------------------------------------------------------

def list_people(lib: Library, include_hidden: bool = False, search: str = "", *,
                order: str = "faces") -> list[PersonSummary]:
    """Every person (hidden ones only when asked), optionally filtered by a case-insensitive
    substring of the name. ``order``: "faces" (most faces first, then name) or "name"."""
    if order not in ("faces", "name"):
        raise InvalidRequest('order must be "faces" or "name"')
    with lib.session() as s:
        q = select(Person)
        if not include_hidden:
            q = q.where(Person.hidden.is_(False))
        needle = normalise_name(search).casefold()
        people = list(s.scalars(q))
        if needle:  # folded in Python: SQLite's lower() leaves "É" as it is
            people = [p for p in people if needle in normalise_name(p.name).casefold()]
        result = _summaries(s, people)
    if order == "faces":
        result.sort(key=lambda p: (-p.face_count, p.name.casefold(), p.id))
    else:
        result.sort(key=lambda p: (p.name.casefold(), p.id))
    return result


def get_person(lib: Library, person_id: int) -> PersonSummary:
    with lib.session() as s:
        return _summaries(s, [require_person(s, person_id)])[0]


def find_person(lib: Library, ref: str | int) -> PersonSummary:
    """The person a user means: a name (exact, else the one case-insensitive match) or an
    id, by the one rule of :func:`organizer.queries.resolve_person`. PersonNotFound if none."""
    with lib.session() as s:
        return _summaries(s, [resolve_person(s, ref)])[0]


# --- clusters -----------------------------------------------------------------------------

def _open_cluster_sizes() -> Select[int | None, int]:
    return (select(Face.cluster_id.label("cid"), func.count(Face.id).label("n"))
            .where(Face.cluster_id.is_not(None), live(), unowned())
            .group_by(Face.cluster_id))


def list_clusters(lib: Library, limit: int = 50, offset: int = 0) -> list[ClusterSummary]:
    """Groups of unnamed faces, largest first (ties: lowest id first)."""
    limit, offset = _page(limit, offset)
    with lib.session() as s:
        sizes = _open_cluster_sizes().subquery()
        rows = list(s.execute(
            select(sizes.c.cid, sizes.c.n, Cluster.run_id).join(Cluster, Cluster.id == sizes.c.cid)
            .order_by(sizes.c.n.desc(), sizes.c.cid).limit(limit).offset(offset)))
        return [_cluster_summary(s, cid, n, run_id is None) for cid, n, run_id in rows]


def _cluster_summary(s: Session, cid: int, size: int, user_made: bool) -> ClusterSummary:
    faces = list(s.execute(
        select(Face.id, Face.person_id, Face.assignment, Face.confidence)
        .where(Face.cluster_id == cid, live(), unowned())
        .order_by(Face.quality.desc(), Face.id)))
    preview = [f[0] for f in faces[:CLUSTER_PREVIEW]]
    votes: dict[int, list[float]] = {}
    for _fid, pid, assignment, conf in faces:
        if pid is not None and assignment == Assignment.suggested:
            votes.setdefault(pid, []).append(float(conf or 0.0))
    sid = sname = sconf = None
    if votes:
        sid = max(votes, key=lambda p: (len(votes[p]), sum(votes[p])))
        sname = s.scalar(select(Person.name).where(Person.id == sid))
        sconf = sum(votes[sid]) / len(votes[sid])
    return ClusterSummary(id=cid, size=size, face_ids=preview, suggested_person_id=sid,
                          suggested_person_name=sname, confidence=sconf, user_made=user_made)


def count_clusters(lib: Library) -> int:
    """How many groups of unnamed faces there are (what :func:`list_clusters` pages over)."""
    with lib.session() as s:
        return s.scalar(select(func.count()).select_from(_open_cluster_sizes().subquery())) or 0


def get_cluster(lib: Library, cluster_id: int) -> ClusterSummary:
    with lib.session() as s:
        cluster = s.get(Cluster, cluster_id) if is_id(cluster_id) else None
        if cluster is None:
            raise ClusterNotFound(f"there is no cluster with id {cluster_id}")
        n = s.scalar(select(func.count(Face.id)).where(Face.cluster_id == cluster_id, live(), unowned())) or 0
        return _cluster_summary(s, cluster_id, n, cluster.run_id is None)


def faces_in_cluster(lib: Library, cluster_id: int, limit: int = 200, offset: int = 0) -> list[FaceInfo]:
    """The unnamed faces of a cluster, best quality first. ClusterNotFound if unknown."""
    limit, offset = _page(limit, offset)
    with lib.session() as s:
        if not is_id(cluster_id) or s.get(Cluster, cluster_id) is None:
            raise ClusterNotFound(f"there is no cluster with id {cluster_id}")
        return _face_infos(s, _face_query().where(Face.cluster_id == cluster_id, live(), unowned())
                           .order_by(Face.quality.desc(), Face.id).limit(limit).offset(offset))


def person_faces(lib: Library, person_id: int, limit: int = 200, offset: int = 0, *,
                 include_suggested: bool = False) -> list[FaceInfo]:
    """The person's faces (confirmed and auto-assigned), oldest photo first; with
    ``include_suggested`` also faces only suggested for them."""
    limit, offset = _page(limit, offset)
    with lib.session() as s:
        require_person(s, person_id)
        kinds = [Assignment.confirmed, Assignment.auto] + ([Assignment.suggested] if include_suggested else [])
        return _face_infos(s, _face_query()
                           .where(Face.person_id == person_id, live(), Face.assignment.in_(kinds))
                           .order_by(Photo.taken_at.is_(None), Photo.taken_at, Face.id)
                           .limit(limit).offset(offset))


def count_person_faces(lib: Library, person_id: int) -> int:
    with lib.session() as s:
        require_person(s, person_id)
        return s.scalar(select(func.count(Face.id)).where(Face.person_id == person_id, live(), owned())) or 0


def unassigned_faces(lib: Library, limit: int = 200, offset: int = 0) -> list[FaceInfo]:
    """Faces that belong to nobody yet (those with a pending suggestion included), grouped
    by cluster (clustered faces first), then by id."""
    limit, offset = _page(limit, offset)
    with lib.session() as s:
        return _face_infos(s, _face_query().where(live(), unowned())
                           .order_by(Face.cluster_id.is_(None), Face.cluster_id, Face.id)
                           .limit(limit).offset(offset))


def count_unassigned(lib: Library) -> int:
    with lib.session() as s:
        return s.scalar(select(func.count(Face.id)).where(live(), unowned())) or 0


def get_faces(lib: Library, face_ids: list[int]) -> list[FaceInfo]:
    """These faces (unknown ids are left out), in the order given."""
    ids = [int(i) for i in face_ids]
    with lib.session() as s:
        found = {f.id: f for f in _face_infos(s, _face_query().where(Face.id.in_(ids)))} if ids else {}
    return [found[i] for i in ids if i in found]


# --- photos -------------------------------------------------------------------------------

def photo_faces(lib: Library, photo_id: int, *, include_not_faces: bool = False) -> tuple[PhotoInfo, list[FaceInfo]]:
    """A photo and its faces (left to right); NotFound if there is no such photo."""
    with lib.session() as s:
        photo = s.get(Photo, photo_id) if is_id(photo_id) else None
        if photo is None:
            raise NotFound(f"there is no photo with id {photo_id}")
        q = _face_query().where(Face.photo_id == photo_id)
        if not include_not_faces:
            q = q.where(live())
        faces = _face_infos(s, q.order_by(Face.left, Face.id))
        status = photo.status.value if isinstance(photo.status, PhotoStatus) else str(photo.status)
        info = PhotoInfo(id=photo.id, path=photo.path, width=photo.width, height=photo.height,
                         taken_at=photo.taken_at, status=status, faces=len(faces), error=photo.error)
        return info, faces


def face_thumbnail(lib: Library, face_id: int) -> bytes | None:
    """The face's small JPEG crop, or None when there is none (or no such face)."""
    if not is_id(face_id):
        return None
    with lib.session() as s:
        return s.scalar(select(FaceThumb.jpeg).where(FaceThumb.face_id == face_id))


__all__ = [
    "PersonSummary", "ClusterSummary", "FaceInfo", "PhotoInfo",
    "list_people", "get_person", "find_person", "list_clusters", "count_clusters", "get_cluster",
    "faces_in_cluster", "person_faces", "count_person_faces", "unassigned_faces", "count_unassigned",
    "get_faces", "photo_faces", "face_thumbnail",
]
