"""Who might this be: rank the named people for unassigned faces and clusters.

How a face is scored against a person: the mean Euclidean distance from the face to the
person's (up to) :data:`K_PER_PERSON` nearest *confirmed* faces. Only faces the user
confirmed are used as evidence, so a machine mistake can never teach the machine. A person
the user rejected for a face ("not this person") is never suggested for it again. People
further than :data:`SUGGEST_MAX_DISTANCE` (0.50, measured: see README) are not
suggested at all.

The confidence is a logistic function of that distance, calibrated on lfw-dev (see
README "Clustering and labelling people"): :data:`CONFIDENCE_MIDPOINT` is the distance
where a match is a coin flip.

Cost: every unassigned face keeps its :data:`TOP_K` nearest confirmed faces. That table is
built once per library and kept (see :class:`SuggestionIndex`); after each answer only what
changed is recomputed — confirming k faces costs one (unassigned x k) distance block, not a
rebuild — so the review loop stays fast on a big library.
"""
from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .browse import live, require_person
from .db import Library
from .errors import InvalidRequest
from .labelling import Recorder, _faces_text, accept_faces, load_faces
from .models import Assignment, ClusterRun, Face, FaceRejection, Operation, Person

#: confirmed faces per person averaged into the face-to-person distance
K_PER_PERSON = 3
#: nearest confirmed faces kept per unassigned face (covers K_PER_PERSON for several people)
TOP_K = 24
#: no suggestion beyond this distance (measured with bench/labelling.py: 0.60 and 0.55
#: offered so many wrong people that the answers cost more than they saved)
SUGGEST_MAX_DISTANCE = 0.50
#: confidence = 1 / (1 + exp((distance - MIDPOINT) / SCALE))
CONFIDENCE_MIDPOINT = 0.52
CONFIDENCE_SCALE = 0.035
#: neighbours further than this are never needed (beyond the suggestion distance)
NEIGHBOUR_CUTOFF = 0.70


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


def confidence_for(distance: float) -> float:
    z = (distance - CONFIDENCE_MIDPOINT) / CONFIDENCE_SCALE
    return 1.0 / (1.0 + math.exp(min(60.0, max(-60.0, z))))


def load_embeddings(s: Session, where: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 matrix) of the faces matching ``where``."""
    ids, rows = [], []
    for fid, raw in s.execute(select(Face.id, Face.embedding).where(*where).order_by(Face.id)):
        ids.append(fid)
        rows.append(raw)
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 128), dtype=np.float32)
    mat = np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(ids), -1)
    return np.asarray(ids, dtype=np.int64), mat


def nearest(queries: np.ndarray, refs: np.ndarray, k: int,
            max_distance: float = NEIGHBOUR_CUTOFF) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, its (up to) ``k`` nearest reference rows within ``max_distance``:
    (distances, indexes), both (n, k), nearest first, padded with inf / -1.

    Chunked float32 BLAS, so never an n x m matrix; only pairs under the cutoff are sorted
    (most faces have few close references), which is far cheaper than a full partition."""
    n, m = len(queries), len(refs)
    dist = np.full((n, k), np.inf, dtype=np.float32)
    idx = np.full((n, k), -1, dtype=np.int64)
    if n == 0 or m == 0 or k == 0:
        return dist, idx
    refs = np.ascontiguousarray(refs, dtype=np.float32)
    rn = np.einsum("ij,ij->i", refs, refs)
    cut2 = np.float32(max_distance * max_distance)
    rows = max(64, 8_000_000 // m)
    for a in range(0, n, rows):
        q = np.ascontiguousarray(queries[a:a + rows], dtype=np.float32)
        d2 = q @ refs.T
        d2 *= -2.0
        d2 += rn[None, :]
        d2 += np.einsum("ij,ij->i", q, q)[:, None]
        close = d2 <= cut2
        if np.count_nonzero(close) > 8 * k * len(q) and k < m:
            # crowded (many references close to every face): a partial sort per row is cheaper
            part = np.argpartition(d2, k - 1, axis=1)[:, :k]
            pd = np.take_along_axis(d2, part, axis=1)
            order = np.argsort(pd, axis=1)
            pd = np.take_along_axis(pd, order, axis=1)
            part = np.take_along_axis(part, order, axis=1)
            ok = pd <= cut2
            dist[a:a + len(q)] = np.where(ok, np.sqrt(np.maximum(pd, 0.0)), np.inf)
            idx[a:a + len(q)] = np.where(ok, part, -1)
            continue
        r, c = np.nonzero(close)
        if len(r) == 0:
            continue
        dd = d2[r, c]
        order = np.lexsort((dd, r))
        r, c, dd = r[order], c[order], dd[order]
        first = np.searchsorted(r, r, side="left")
        rank = np.arange(len(r)) - first
        keep = rank < k
        r, c, dd, rank = r[keep], c[keep], dd[keep], rank[keep]
        dist[a + r, rank] = np.sqrt(np.maximum(dd, 0.0))
        idx[a + r, rank] = c
    return dist, idx


def person_distances(dist_row: np.ndarray, owner_row: np.ndarray, rejected: set[int] | frozenset[int] = frozenset()
                     ) -> dict[int, float]:
    """{person: mean distance to their K_PER_PERSON nearest confirmed faces} from one face's
    neighbour list (distances sorted, owners aligned; -1 = padding); rejected people left out."""
    per: dict[int, list[float]] = {}
    for d, pid in zip(dist_row.tolist(), owner_row.tolist()):
        if pid < 0 or d == math.inf:
            break
        if pid in rejected:
            continue
        got = per.setdefault(pid, [])
        if len(got) < K_PER_PERSON:
            got.append(d)
    return {pid: sum(v) / len(v) for pid, v in per.items()}


class SuggestionIndex:
    """The nearest confirmed faces of every unassigned face, kept up to date.

    ``refresh`` brings it in line with the library: a full build the first time (or after a
    scan, a re-clustering or an undo), otherwise only the faces touched by operations since
    the last look are reloaded, and newly confirmed faces are merged into the neighbour
    lists with one (unassigned x new) distance block.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.stamp: tuple | None = None
        self.last_op = 0
        self.undone = 0
        self.vectors: dict[int, np.ndarray] = {}
        #: face -> (person_id, assignment, cluster_id) of live faces
        self.state: dict[int, tuple[int | None, Assignment | None, int | None]] = {}
        self.refs: set[int] = set()
        self.rows: dict[int, int] = {}          # query face -> row of nn_d / nn_ref
        self.nn_d = np.zeros((0, TOP_K), dtype=np.float32)
        self.nn_ref = np.zeros((0, TOP_K), dtype=np.int64)   # face ids of the references
        self.cache: dict[int, dict[int, float]] = {}
        self.rejected: dict[int, set[int]] = {}
        self.names: dict[int, str] = {}

    # --- keeping up with the library -------------------------------------------------------

    @staticmethod
    def _stamp(s: Session) -> tuple:
        return (s.scalar(select(func.max(Face.id))), s.scalar(select(func.count(Face.id))),
                s.scalar(select(func.max(ClusterRun.id))))

    def refresh(self, s: Session) -> None:
        stamp = self._stamp(s)
        last_op = s.scalar(select(func.max(Operation.id))) or 0
        undone = s.scalar(select(func.count(Operation.id)).where(Operation.undone.is_(True))) or 0
        rejected: dict[int, set[int]] = {}
        for fid, pid in s.execute(select(FaceRejection.face_id, FaceRejection.person_id)):
            rejected.setdefault(fid, set()).add(pid)
        self.names = dict(s.execute(select(Person.id, Person.name)).all())
        if stamp != self.stamp or undone != self.undone:
            self.rejected = rejected
            self._build(s)
        elif last_op != self.last_op:
            changed: set[int] = set()
            for payload in s.scalars(select(Operation.undo).where(Operation.id > self.last_op)):
                changed.update(int(i) for i in (payload or {}).get("faces", {}))
            self.rejected = rejected
            self._update(s, changed)
        self.stamp, self.last_op, self.undone = stamp, last_op, undone

    def _is_query(self, fid: int) -> bool:
        st = self.state.get(fid)
        return st is not None and (st[0] is None or st[1] in (None, Assignment.suggested))

    def _is_ref(self, fid: int) -> bool:
        st = self.state.get(fid)
        return st is not None and st[0] is not None and st[1] == Assignment.confirmed

    def _build(self, s: Session) -> None:
        ids, mat = load_embeddings(s, [live()])
        self.vectors = {int(i): mat[n] for n, i in enumerate(ids)}
        self.state = {fid: (pid, a, cid) for fid, pid, a, cid in
                      s.execute(select(Face.id, Face.person_id, Face.assignment, Face.cluster_id).where(live()))}
        self.refs = {f for f in self.state if self._is_ref(f)}
        self.rows, self.cache = {}, {}
        self.nn_d = np.zeros((0, TOP_K), dtype=np.float32)
        self.nn_ref = np.zeros((0, TOP_K), dtype=np.int64)
        self._add_queries([f for f in self.state if self._is_query(f)])

    def _ref_arrays(self, only: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        ids = sorted(self.refs) if only is None else only
        mat = np.stack([self.vectors[f] for f in ids]) if ids else np.zeros((0, 128), dtype=np.float32)
        return np.asarray(ids, dtype=np.int64), mat

    def _add_queries(self, query_ids: list[int]) -> None:
        query_ids = [f for f in query_ids if f not in self.rows]
        if not query_ids:
            return
        ref_ids, ref_mat = self._ref_arrays()
        dist, idx = nearest(np.stack([self.vectors[f] for f in query_ids]), ref_mat, TOP_K)
        start = len(self.nn_d)
        self.nn_d = np.concatenate([self.nn_d, dist])
        self.nn_ref = np.concatenate([self.nn_ref, np.append(ref_ids, -1)[idx]])  # -1 (padding) -> -1
        for n, f in enumerate(query_ids):
            self.rows[f] = start + n
            self.cache.pop(f, None)

    def _update(self, s: Session, changed: set[int]) -> None:
        if not changed:
            return
        rows = {fid: (pid, a, cid, bool(lv)) for fid, pid, a, cid, lv in s.execute(
            select(Face.id, Face.person_id, Face.assignment, Face.cluster_id, Face.is_face).where(Face.id.in_(changed)))}
        old_refs = {f: self.state[f][0] for f in changed if self._is_ref(f)}
        for fid in changed:
            st = rows.get(fid)
            if st is None or not st[3] or fid not in self.vectors:
                self.state.pop(fid, None)
            else:
                self.state[fid] = st[:3]
        lost = [f for f, pid in old_refs.items() if not self._is_ref(f) or self.state[f][0] != pid]
        if lost:
            # a confirmed face changed person or went away: neighbour lists may point at it
            self._rebuild_neighbours()
            return
        gained = sorted(f for f in changed if self._is_ref(f) and f not in old_refs)
        for fid in changed:
            self.cache.pop(fid, None)
            if not self._is_query(fid):
                self.rows.pop(fid, None)
        if gained:
            self.refs.update(gained)
            self._merge_new_refs(gained)
        self._add_queries([f for f in changed if self._is_query(f)])

    def _rebuild_neighbours(self) -> None:
        self.refs = {f for f in self.state if self._is_ref(f)}
        self.rows, self.cache = {}, {}
        self.nn_d = np.zeros((0, TOP_K), dtype=np.float32)
        self.nn_ref = np.zeros((0, TOP_K), dtype=np.int64)
        self._add_queries([f for f in self.state if self._is_query(f)])

    def _merge_new_refs(self, new_refs: list[int]) -> None:
        if not self.rows:
            return
        queries = list(self.rows)
        at = np.asarray([self.rows[f] for f in queries], dtype=np.int64)
        new_ids, new_mat = self._ref_arrays(new_refs)
        d, i = nearest(np.stack([self.vectors[f] for f in queries]), new_mat, min(TOP_K, len(new_refs)))
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
            self.cache.pop(queries[n], None)

    # --- scoring ------------------------------------------------------------------------------

    def person_distances(self, fid: int) -> dict[int, float]:
        """Distance from face ``fid`` to each nearby person it was not rejected for."""
        got = self.cache.get(fid)
        if got is not None:
            return got
        row = self.rows.get(fid)
        if row is None:
            return {}
        refs = self.nn_ref[row]
        owners = np.asarray([self.state[r][0] if r >= 0 and r in self.state else -1 for r in refs.tolist()])
        got = person_distances(self.nn_d[row], owners, self.rejected.get(fid, frozenset()))
        self.cache[fid] = got
        return got

    def suggestions(self, fid: int, limit: int) -> list[Suggestion]:
        ranked = sorted(self.person_distances(fid).items(), key=lambda kv: (kv[1], kv[0]))
        return [Suggestion(pid, self.names.get(pid, str(pid)), confidence_for(d), d)
                for pid, d in ranked if d <= SUGGEST_MAX_DISTANCE][:limit]

    def items(self, skip: set[int]) -> list[SuggestionItem]:
        """One work item per cluster (its faces that are close to its best person) and per
        unclustered face, most confident first."""
        groups: dict[object, list[int]] = {}
        for fid in self.rows:
            if fid in skip:
                continue
            cid = self.state[fid][2]
            groups.setdefault(("c", cid) if cid is not None else ("f", fid), []).append(fid)
        out = []
        for key, fids in groups.items():
            per_face = {f: self.person_distances(f) for f in fids}
            votes: dict[int, list[float]] = {}
            for f, dists in per_face.items():
                for pid, d in dists.items():
                    if d <= SUGGEST_MAX_DISTANCE:
                        votes.setdefault(pid, []).append(d)
            if not votes:
                continue
            # the person most faces are close to; ties by the median distance
            pid = min(votes, key=lambda p: (-len(votes[p]), float(np.median(votes[p])), p))
            members = sorted(f for f, dists in per_face.items() if dists.get(pid, 9.9) <= SUGGEST_MAX_DISTANCE)
            d = float(np.median([per_face[f][pid] for f in members]))
            out.append(SuggestionItem(face_ids=members, person_id=pid, person_name=self.names.get(pid, str(pid)),
                                      confidence=confidence_for(d), distance=d,
                                      cluster_id=key[1] if key[0] == "c" else None))  # type: ignore[index]
        out.sort(key=lambda it: (-round(it.confidence, 3), -len(it.face_ids), it.distance, it.face_ids[0]))
        return out


_INDEXES: "weakref.WeakKeyDictionary[Library, SuggestionIndex]" = weakref.WeakKeyDictionary()
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


def accept_suggestion(lib: Library, face_ids: Sequence[int], person_id: int) -> None:
    """The user agrees: these faces are ``person_id`` (confirmed)."""
    with lib.session() as s:
        person = require_person(s, person_id)
        faces = load_faces(s, face_ids)
        rec = accept_faces(s, faces, person)
        rec.save("accept", f"accepted {_faces_text(len(faces))} as {person.name}")


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
        rec.save("reject", f"{_faces_text(len(faces))} not {person.name}")


__all__ = [
    "Suggestion", "SuggestionItem", "SuggestionIndex", "suggest_for_faces", "next_suggestion",
    "all_suggestions", "accept_suggestion", "reject_suggestion", "confidence_for",
]
