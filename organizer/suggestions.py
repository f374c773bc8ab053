"""Who might this be: rank the named people for unassigned faces and clusters.

Each face is scored against each named person with :mod:`organizer.neighbours` (mean
distance to the person's nearest confirmed *evidence* faces, a logistic confidence, nobody
beyond :data:`~organizer.neighbours.SUGGEST_MAX_DISTANCE`); this module keeps those scores
for the whole library and turns them into questions. A person the user rejected for a face
("not this person") is never suggested for it again, and nor is a person who already has
a face in that photo (two faces of one photo are never one person) or who was born after
the photo was taken (its EXIF date, else the file's date: a file's date is never before
the photo was really taken, so that rule cannot wrongly exclude anybody).

Cost: every unassigned face keeps its :data:`TOP_K` nearest evidence faces. That table is
built once per library and kept (see :class:`SuggestionIndex`), and so are the work items
made from it (one per cluster or unclustered face, in order); after each answer or undo
only what changed is recomputed — confirming k faces costs one (unassigned x k) distance
block and re-scoring the groups those faces touch, not a rebuild — so the review loop stays
fast on a big library.
"""
from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .constraints import birth_dates
from .db import Library
from .errors import InvalidRequest
from .labelling import Recorder, accept_faces, load_faces
from .models import Assignment, ClusterRun, Face, FaceRejection, Operation, Person, Photo, embedding_matrix
from .neighbours import (
    SUGGEST_MAX_DISTANCE,
    TOP_K,
    choose_evidence,
    confidence_for,
    evidence_positions,
    nearest,
    person_distances,
)
from .queries import FaceState, faces_text, live, require_person

#: SQL parameters per IN (...) list
_CHUNK = 900


@dataclass(frozen=True)
class Suggestion:
    person_id: int
    person_name: str
    confidence: float
    distance: float


@dataclass(frozen=True)
class SuggestionItem:
    face_ids: list[int]
    person_id: int
    person_name: str
    confidence: float
    distance: float
    cluster_id: int | None


def _median(values: list[float]) -> float:
    """np.median of a short list (same value), without numpy's per-call overhead."""
    v = sorted(values)
    h = len(v) // 2
    return v[h] if len(v) % 2 else (v[h - 1] + v[h]) / 2


def _sort_key(it: SuggestionItem) -> tuple:
    """Most confident first; then bigger groups; then nearer; then lowest face id (unique)."""
    return (-round(it.confidence, 3), -len(it.face_ids), it.distance, it.face_ids[0])


GroupKey = tuple  # ("c", cluster id) or ("f", face id) for an unclustered face


class SuggestionIndex:
    """The nearest evidence faces of every unassigned face, and the work items made from
    them in order, kept up to date.

    ``refresh`` brings it in line with the library: a full build the first time (or after a
    scan or a re-clustering), otherwise only the faces touched by operations (or undos)
    since the last look are reloaded: newly chosen evidence faces are merged into the
    neighbour lists with one (unassigned x new) distance block, faces that stopped being
    evidence are replaced only in the neighbour lists that held them, and only the work
    items of the groups whose faces changed are scored again.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.stamp: tuple | None = None
        self.last_op = 0
        self.undone_ops: set[int] = set()
        #: every face: id -> row of ``mat`` (embeddings) and ``quality``
        self.at: dict[int, int] = {}
        self.mat = np.zeros((0, 128), dtype=np.float32)
        self.quality = np.zeros(0, dtype=np.float64)
        #: face -> whose it is and its group, for live faces
        self.state: dict[int, FaceState] = {}
        #: person -> their confirmed faces, and the ones of those used as evidence
        self.confirmed: dict[int, set[int]] = {}
        self.evidence: dict[int, set[int]] = {}
        #: face id -> the person it is confirmed for, else -1 (one spare -1 at the end, so
        #: the padding id -1 of the neighbour lists maps to -1 too)
        self.owner_of = np.full(1, -1, dtype=np.int64)
        self.refs: set[int] = set()
        self._ref_cache: tuple[np.ndarray, np.ndarray] | None = None
        self.rows: dict[int, int] = {}          # query face -> row of nn_d / nn_ref
        self.row_face = np.zeros(0, dtype=np.int64)   # row -> query face (-1: dropped)
        self.nn_d = np.zeros((0, TOP_K), dtype=np.float32)
        self.nn_ref = np.zeros((0, TOP_K), dtype=np.int64)   # face ids of the references
        self.cache: dict[int, dict[int, float]] = {}
        self.rejected: dict[int, set[int]] = {}
        self.names: dict[int, str] = {}
        #: face -> its photo, photo -> its faces, photo -> the day it was taken
        self.photo_of: dict[int, int] = {}
        self.photo_faces: dict[int, list[int]] = {}
        self.photo_day: dict[int, date] = {}
        #: person -> birth date (only people who have one)
        self.births: dict[int, date] = {}
        #: work items: query faces per group, each group's item, and the items in order
        self.group_of: dict[int, GroupKey] = {}
        self.members: dict[GroupKey, set[int]] = {}
        self.item_of: dict[GroupKey, SuggestionItem] = {}
        self.dirty: set[GroupKey] = set()
        self.order_keys: list[tuple] = []
        self.order_items: list[SuggestionItem] = []

    # --- keeping up with the library -------------------------------------------------------

    @staticmethod
    def _stamp(s: Session) -> tuple:
        return (s.scalar(select(func.max(Face.id))), s.scalar(select(func.count(Face.id))),
                s.scalar(select(func.max(ClusterRun.id))))

    def refresh(self, s: Session) -> None:
        stamp = self._stamp(s)
        last_op = s.scalar(select(func.max(Operation.id))) or 0
        undone_n = s.scalar(select(func.count(Operation.id)).where(Operation.undone.is_(True))) or 0
        self._set_names(dict(s.execute(select(Person.id, Person.name)).all()))
        births = birth_dates(s)
        if births != self.births:
            self.births = births
            self.cache.clear()
            self.dirty |= set(self.members)
        rebuild = stamp != self.stamp or last_op < self.last_op
        newly_undone: set[int] = set()
        undone = self.undone_ops
        if not rebuild and undone_n != len(self.undone_ops):
            undone = set(s.scalars(select(Operation.id).where(Operation.undone.is_(True))))
            newly_undone = undone - self.undone_ops
            rebuild = not undone >= self.undone_ops  # operations were deleted: start over
        if rebuild:
            undone = set(s.scalars(select(Operation.id).where(Operation.undone.is_(True))))
            self._build(s)
        elif last_op != self.last_op or newly_undone:
            changed: set[int] = set()
            for payload in s.scalars(select(Operation.undo).where(
                    or_(Operation.id > self.last_op, Operation.id.in_(sorted(newly_undone))))):
                payload = payload or {}
                changed.update(int(i) for i in payload.get("faces", {}))
                for pair in (payload.get("rejections_added") or []) + (payload.get("rejections_removed") or []):
                    changed.add(int(pair[0]))
            self._update(s, changed)
        self.stamp, self.last_op, self.undone_ops = stamp, last_op, undone

    def _set_names(self, names: dict[int, str]) -> None:
        if names == self.names:
            return
        renamed = {p for p in set(names) | set(self.names) if names.get(p) != self.names.get(p)}
        self.names = names
        for n, it in enumerate(self.order_items):
            if it.person_id in renamed:
                new = replace(it, person_name=names.get(it.person_id, str(it.person_id)))
                self.order_items[n] = new
                self.item_of[self._key_of_item(new)] = new

    @staticmethod
    def _key_of_item(it: SuggestionItem) -> GroupKey:
        return ("c", it.cluster_id) if it.cluster_id is not None else ("f", it.face_ids[0])

    def _is_query(self, fid: int) -> bool:
        st = self.state.get(fid)
        return st is not None and st.is_open

    def _confirmed_for(self, fid: int) -> int | None:
        st = self.state.get(fid)
        return st.confirmed_for if st is not None else None

    def _build(self, s: Session) -> None:
        # every face's embedding, "not a face" ones included: an undo can bring them back
        ids, rows, quality = [], [], []
        state: dict[int, FaceState] = {}
        photo_of: dict[int, int] = {}
        photo_faces: dict[int, list[int]] = {}
        for fid, raw, pid, a, cid, q, is_face, photo in s.execute(
                select(Face.id, Face.embedding, Face.person_id, Face.assignment, Face.cluster_id, Face.quality,
                       Face.is_face, Face.photo_id).order_by(Face.id)):
            ids.append(fid)
            rows.append(raw)
            quality.append(q or 0.0)
            photo_of[fid] = photo
            photo_faces.setdefault(photo, []).append(fid)
            if is_face:
                state[fid] = FaceState(pid, a, cid)
        self.photo_of, self.photo_faces = photo_of, photo_faces
        self.photo_day = {pid: taken.date() for pid, taken in s.execute(select(Photo.id, Photo.taken_at))
                          if taken is not None}
        self.at = {f: n for n, f in enumerate(ids)}
        self.mat = embedding_matrix(rows)
        self.quality = np.asarray(quality, dtype=np.float64)
        self.state = state
        self.rejected = {}
        for fid, pid in s.execute(select(FaceRejection.face_id, FaceRejection.person_id)):
            self.rejected.setdefault(fid, set()).add(pid)
        self.confirmed = {}
        self.owner_of = np.full((ids[-1] if ids else 0) + 2, -1, dtype=np.int64)
        for fid in ids:
            pid = self._confirmed_for(fid)
            if pid is not None:
                self.confirmed.setdefault(pid, set()).add(fid)
                self.owner_of[fid] = pid
        conf_ids = np.asarray([f for p in self.confirmed for f in self.confirmed[p]], dtype=np.int64)
        owners = np.asarray([p for p in self.confirmed for _ in self.confirmed[p]], dtype=np.int64)
        at = np.asarray([self.at[f] for f in conf_ids.tolist()], dtype=np.int64)
        keep = evidence_positions(conf_ids, owners, self.mat[at], self.quality[at])
        self.evidence = {}
        for f, p in zip(conf_ids[keep].tolist(), owners[keep].tolist(), strict=True):
            self.evidence.setdefault(p, set()).add(f)
        self.refs = set(conf_ids[keep].tolist())
        self._ref_cache = None
        self.rows, self.cache = {}, {}
        self.row_face = np.zeros(0, dtype=np.int64)
        self.nn_d = np.zeros((0, TOP_K), dtype=np.float32)
        self.nn_ref = np.zeros((0, TOP_K), dtype=np.int64)
        self.group_of, self.members, self.item_of, self.dirty = {}, {}, {}, set()
        self.order_keys, self.order_items = [], []
        self._add_queries([f for f in ids if self._is_query(f)])

    def _vectors(self, face_ids: Iterable[int]) -> np.ndarray:
        return self.mat[np.asarray([self.at[f] for f in face_ids], dtype=np.int64)]

    def _ref_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ref_cache is None:
            ids = np.asarray(sorted(self.refs), dtype=np.int64)
            self._ref_cache = (ids, self._vectors(ids.tolist()) if len(ids) else np.zeros((0, 128), dtype=np.float32))
        return self._ref_cache

    def _neighbours(self, query_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(distances, reference face ids) of the TOP_K nearest evidence faces of each query."""
        ref_ids, ref_mat = self._ref_arrays()
        dist, idx = nearest(self._vectors(query_ids), ref_mat, TOP_K)
        return dist, np.append(ref_ids, -1)[idx]  # -1 (padding) -> -1

    def _add_queries(self, query_ids: list[int]) -> None:
        query_ids = [f for f in query_ids if f not in self.rows]
        if not query_ids:
            return
        dist, ref = self._neighbours(query_ids)
        start = len(self.nn_d)
        self.nn_d = np.concatenate([self.nn_d, dist])
        self.nn_ref = np.concatenate([self.nn_ref, ref])
        self.row_face = np.concatenate([self.row_face, np.asarray(query_ids, dtype=np.int64)])
        for n, f in enumerate(query_ids):
            self.rows[f] = start + n
            self._invalidate(f)
            self._regroup(f)

    def _drop_row(self, fid: int) -> None:
        row = self.rows.pop(fid, None)
        if row is not None:
            self.row_face[row] = -1
        self._invalidate(fid)
        self._regroup(fid)

    def _invalidate(self, fid: int) -> None:
        """Face ``fid``'s scores may have changed: forget them and re-score its group."""
        self.cache.pop(fid, None)
        key = self.group_of.get(fid)
        if key is not None:
            self.dirty.add(key)

    def _regroup(self, fid: int) -> None:
        """Put a query face in the group of its cluster (or its own), or in none."""
        key: GroupKey | None = None
        if fid in self.rows:
            cid = self.state[fid].cluster_id
            key = ("c", cid) if cid is not None else ("f", fid)
        old = self.group_of.get(fid)
        if old == key:
            return
        if old is not None:
            self.members[old].discard(fid)
            if not self.members[old]:
                del self.members[old]
            self.dirty.add(old)
            del self.group_of[fid]
        if key is not None:
            self.members.setdefault(key, set()).add(fid)
            self.group_of[fid] = key
            self.dirty.add(key)

    def _update(self, s: Session, changed: set[int]) -> None:
        if not changed:
            return
        ids = sorted(changed)
        fresh: dict[int, FaceState] = {}   # the live faces among them, as they are now
        for a in range(0, len(ids), _CHUNK):
            chunk = ids[a:a + _CHUNK]
            fresh.update({fid: FaceState(pid, asg, cid) for fid, pid, asg, cid in s.execute(
                select(Face.id, Face.person_id, Face.assignment, Face.cluster_id)
                .where(Face.id.in_(chunk), live()))})
            for fid in chunk:
                self.rejected.pop(fid, None)
            for fid, pid in s.execute(select(FaceRejection.face_id, FaceRejection.person_id)
                                      .where(FaceRejection.face_id.in_(chunk))):
                self.rejected.setdefault(fid, set()).add(pid)
        people: set[int] = set()
        for fid in ids:
            before = self._confirmed_for(fid)
            st = fresh.get(fid)
            if st is None or fid not in self.at:
                self.state.pop(fid, None)
            else:
                self.state[fid] = st
            after = self._confirmed_for(fid)
            if before != after:
                self.owner_of[fid] = -1 if after is None else after
                if before is not None:
                    self.confirmed[before].discard(fid)
                    people.add(before)
                if after is not None:
                    self.confirmed.setdefault(after, set()).add(fid)
                    people.add(after)
            self._invalidate(fid)
            for mate in self.photo_faces.get(self.photo_of.get(fid, -1), ()):
                self._invalidate(mate)   # who this face is changes who its photo-mates may be
        lost: set[int] = set()
        gained: set[int] = set()
        for pid in people:
            old = self.evidence.pop(pid, set())
            new = self._choose_evidence(pid)
            if new:
                self.evidence[pid] = new
            lost |= old - new
            gained |= new - old
        if lost or gained:
            self.refs = (self.refs - lost) | gained
            self._ref_cache = None
        for fid in ids:
            if fid in self.rows and not self._is_query(fid):
                self._drop_row(fid)
        if gained:
            self._merge_new_refs(sorted(gained))
        if lost:
            self._search_again_without(lost)
        self._add_queries([f for f in ids if self._is_query(f)])
        for fid in ids:
            self._regroup(fid)

    def _choose_evidence(self, pid: int) -> set[int]:
        faces = sorted(self.confirmed.get(pid, ()))
        arr = np.asarray(faces, dtype=np.int64)
        at = np.asarray([self.at[f] for f in faces], dtype=np.int64)
        return set(arr[choose_evidence(arr, self.mat[at], self.quality[at])].tolist())

    def _search_again_without(self, lost: set[int]) -> None:
        """Search again, against all evidence, the neighbour lists that hold one of these
        faces (no longer evidence)."""
        live_rows = np.asarray(sorted(self.rows.values()), dtype=np.int64)
        if len(live_rows) == 0:
            return
        hit = np.isin(self.nn_ref[live_rows], np.asarray(sorted(lost), dtype=np.int64)).any(axis=1)
        rows = live_rows[hit]
        if len(rows) == 0:
            return
        faces = self.row_face[rows].tolist()
        dist, ref = self._neighbours(faces)
        self.nn_d[rows] = dist
        self.nn_ref[rows] = ref
        for f in faces:
            self._invalidate(f)

    def _merge_new_refs(self, new_refs: list[int]) -> None:
        if not self.rows:
            return
        queries = list(self.rows)
        at = np.asarray([self.rows[f] for f in queries], dtype=np.int64)
        new_ids = np.asarray(new_refs, dtype=np.int64)
        d, i = nearest(self._vectors(queries), self._vectors(new_refs), min(TOP_K, len(new_refs)))
        hit = d[:, 0] < self.nn_d[at, -1]
        if not hit.any():
            return
        at, d, i = at[hit], d[hit], i[hit]
        dist = np.concatenate([self.nn_d[at], d], axis=1)
        ref = np.concatenate([self.nn_ref[at], np.append(new_ids, -1)[i]], axis=1)
        order = np.argsort(dist, axis=1, kind="stable")[:, :TOP_K]
        self.nn_d[at] = np.take_along_axis(dist, order, axis=1)
        self.nn_ref[at] = np.take_along_axis(ref, order, axis=1)
        for n in np.flatnonzero(hit):
            self._invalidate(queries[n])

    # --- scoring ------------------------------------------------------------------------------

    def blocked(self, fid: int) -> set[int]:
        """People face ``fid`` can never be: those who own another face of its photo, and
        those born after the photo was taken."""
        out = set()
        for mate in self.photo_faces.get(self.photo_of.get(fid, -1), ()):
            st = self.state.get(mate)
            if mate != fid and st is not None and st.person_id is not None and not st.is_open:
                out.add(st.person_id)
        day = self.photo_day.get(self.photo_of.get(fid, -1))
        if day is not None and self.births:
            out |= {pid for pid, born in self.births.items() if born > day}
        return out

    def person_distances(self, fid: int) -> dict[int, float]:
        """Distance from face ``fid`` to each nearby person it was not rejected for and may
        be (:meth:`blocked`)."""
        got = self.cache.get(fid)
        if got is not None:
            return got
        row = self.rows.get(fid)
        if row is None:
            return {}
        ruled_out = self.rejected.get(fid, set()) | self.blocked(fid)
        got = person_distances(self.nn_d[row], self.owner_of[self.nn_ref[row]], ruled_out)
        self.cache[fid] = got
        return got

    def suggestions(self, fid: int, limit: int) -> list[Suggestion]:
        ranked = sorted(self.person_distances(fid).items(), key=lambda kv: (kv[1], kv[0]))
        return [Suggestion(pid, self.names.get(pid, str(pid)), confidence_for(d), d)
                for pid, d in ranked if d <= SUGGEST_MAX_DISTANCE][:limit]

    def _group_item(self, key: GroupKey, fids: Iterable[int]) -> SuggestionItem | None:
        """The work item of one group: its faces close to the person most of them are close to."""
        per_face = {f: self.person_distances(f) for f in fids}
        votes: dict[int, list[float]] = {}
        for dists in per_face.values():
            for pid, d in dists.items():
                if d <= SUGGEST_MAX_DISTANCE:
                    votes.setdefault(pid, []).append(d)
        if not votes:
            return None
        # the person most faces are close to; ties by the median distance
        pid = min(votes, key=lambda p: (-len(votes[p]), _median(votes[p]), p))
        members = one_per_photo(
            [f for f, dists in per_face.items() if dists.get(pid, 9.9) <= SUGGEST_MAX_DISTANCE],
            lambda f: per_face[f][pid], self.photo_of)
        members.sort()
        d = _median([per_face[f][pid] for f in members])
        return SuggestionItem(face_ids=members, person_id=pid, person_name=self.names.get(pid, str(pid)),
                              confidence=confidence_for(d), distance=d,
                              cluster_id=key[1] if key[0] == "c" else None)

    def _rescore_changed_groups(self) -> None:
        """Score the groups whose faces changed and put their items in order."""
        if not self.dirty:
            return
        dirty, self.dirty = self.dirty, set()
        bulk = len(dirty) > 256
        for key in dirty:
            old = self.item_of.pop(key, None)
            if old is not None and not bulk:
                n = bisect_left(self.order_keys, _sort_key(old))
                del self.order_keys[n], self.order_items[n]
            fids = self.members.get(key)
            item = self._group_item(key, fids) if fids else None
            if item is None:
                continue
            self.item_of[key] = item
            if not bulk:
                k = _sort_key(item)
                n = bisect_left(self.order_keys, k)
                self.order_keys.insert(n, k)
                self.order_items.insert(n, item)
        if bulk:
            self.order_items = sorted(self.item_of.values(), key=_sort_key)
            self.order_keys = [_sort_key(it) for it in self.order_items]

    def items(self, skip: set[int]) -> list[SuggestionItem]:
        """One work item per cluster (its faces that are close to its best person) and per
        unclustered face, most confident first; faces in ``skip`` are left out."""
        self._rescore_changed_groups()
        touched = {self.group_of[f] for f in skip if f in self.group_of}
        if not touched:
            return list(self.order_items)
        keys, out = list(self.order_keys), list(self.order_items)
        for key in touched:
            old = self.item_of.get(key)
            if old is not None:
                n = bisect_left(keys, _sort_key(old))
                del keys[n], out[n]
            rest = self.members[key] - skip
            item = self._group_item(key, rest) if rest else None
            if item is not None:
                k = _sort_key(item)
                n = bisect_left(keys, k)
                keys.insert(n, k)
                out.insert(n, item)
        return out


def one_per_photo(face_ids: Iterable[int], distance: Callable[[int], float], photo_of: dict[int, int]) -> list[int]:
    """Of several faces of one photo only the nearest (ties: lowest id) stays: two faces of
    one photo are never offered as one person. Order: nearest first."""
    best: dict[int, int] = {}
    for f in sorted(face_ids, key=lambda f: (distance(f), f)):
        best.setdefault(photo_of.get(f, -f), f)
    return sorted(best.values(), key=lambda f: (distance(f), f))


_INDEXES: weakref.WeakKeyDictionary[Library, SuggestionIndex] = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


def index_for(lib: Library) -> SuggestionIndex:
    """The library's suggestion index. Kept per open Library object as a cache only: hold
    ``index.lock`` and call ``index.refresh(s)`` before reading it."""
    with _INDEXES_LOCK:
        index = _INDEXES.get(lib)
        if index is None:
            index = _INDEXES[lib] = SuggestionIndex()
    return index


# --- the API --------------------------------------------------------------------------------

def suggest_for_faces(lib: Library, face_ids: Iterable[int], limit: int = 3) -> dict[int, list[Suggestion]]:
    """Up to ``limit`` people for each given face, best first. Faces that already belong to
    someone, or that have nobody close, get an empty list. Unknown ids: FaceNotFound."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidRequest("limit must be 1 or more")
    with lib.session() as s:
        faces = load_faces(s, list(face_ids), live_only=False)
        index = index_for(lib)
        with index.lock:
            index.refresh(s)
            return {f.id: index.suggestions(f.id, limit) for f in faces}


def all_suggestions(lib: Library, skip_face_ids: Iterable[int] = ()) -> list[SuggestionItem]:
    """Every open suggestion item, most confident first (what :func:`next_suggestion` picks from)."""
    skip = {int(i) for i in skip_face_ids}
    with lib.session() as s:
        index = index_for(lib)
        with index.lock:
            index.refresh(s)
            return index.items(skip)


def next_suggestion(lib: Library, skip_face_ids: Iterable[int] = ()) -> SuggestionItem | None:
    """The most confident open suggestion (a cluster's matching faces, or one face), skipping
    the given faces; None when there is nothing left to suggest."""
    items = all_suggestions(lib, skip_face_ids)
    return items[0] if items else None


def accept_suggestion(lib: Library, face_ids: Sequence[int], person_id: int, *, force: bool = False) -> None:
    """The user agrees: these faces are ``person_id`` (confirmed). SamePhotoConflict unless
    ``force`` when that would give the person two faces of one photo."""
    with lib.session() as s:
        person = require_person(s, person_id)
        faces = load_faces(s, face_ids)
        rec = accept_faces(s, faces, person, force=force)
        rec.save("accept", f"accepted {faces_text(len(faces))} as {person.name}")


def reject_suggestion(lib: Library, face_ids: Sequence[int], person_id: int) -> None:
    """The user says no: these faces are not ``person_id``. Remembered, and a face the
    machine had given to that person (auto or suggested) becomes unassigned. Refused for a
    face the user confirmed as that person (remove it instead)."""
    with lib.session() as s:
        person = require_person(s, person_id)
        faces = load_faces(s, face_ids)
        mine = [f.id for f in faces if f.person_id == person.id and f.assignment == Assignment.confirmed]
        if mine:
            raise InvalidRequest(f"face {', '.join(map(str, mine[:10]))} is confirmed as {person.name}; "
                                 "remove it instead")
        rec = Recorder(s)
        for f in faces:
            rec.face(f)
            rec.reject(f.id, person.id)
            if f.person_id == person.id:
                f.person_id, f.assignment, f.confidence = None, None, None
        rec.save("reject", f"{faces_text(len(faces))} not {person.name}")


__all__ = [
    "Suggestion", "SuggestionItem", "SuggestionIndex", "suggest_for_faces", "next_suggestion",
    "all_suggestions", "accept_suggestion", "reject_suggestion", "confidence_for", "one_per_photo", "index_for",
]
