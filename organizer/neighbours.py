"""How far a face is from a person: the distance maths shared by the suggestions
(:mod:`organizer.suggestions`) and the clustering's auto-assignment
(:mod:`organizer.clustering`), so that both score a face against a person the same way.

How a face is scored against a person: the mean Euclidean distance from the face to the
person's (up to) :data:`K_PER_PERSON` nearest *evidence* faces. Evidence is only ever faces
the user *confirmed*, so a machine mistake can never teach the machine: all of a person's
confirmed faces up to :data:`EVIDENCE_PER_PERSON`; beyond that a fixed selection of them
(their best-quality faces plus faces spread over the rest, see :func:`choose_evidence`),
so that a person with thousands of confirmed faces costs no more than one with a hundred.
People further than :data:`SUGGEST_MAX_DISTANCE` (0.50, measured: see README) are not
suggested at all.

The confidence is a logistic function of that distance, calibrated on lfw-dev (see
README "Clustering and labelling people"): :data:`CONFIDENCE_MIDPOINT` is the distance
where a match is a coin flip.

No writes, no transactions: functions over arrays, and two that read with a session.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from .models import Assignment, Face, FaceRejection, embedding_matrix
from .queries import live

#: confirmed faces per person averaged into the face-to-person distance
K_PER_PERSON = 3
#: nearest evidence faces kept per unassigned face (covers K_PER_PERSON for several people)
TOP_K = 24
#: confirmed faces per person used as evidence. More adds little: a hundred faces spread
#: over how someone looks already hold near neighbours for new photos of them, and the
#: nearest-face search costs (unassigned faces x evidence faces)
EVIDENCE_PER_PERSON = 100
#: of those, the person's best-quality faces; the rest are spread over their other faces
EVIDENCE_BEST_QUALITY = 50
#: no suggestion beyond this distance (measured with bench/labelling.py: 0.60 and 0.55
#: offered so many wrong people that the answers cost more than they saved)
SUGGEST_MAX_DISTANCE = 0.50
#: confidence = 1 / (1 + exp((distance - MIDPOINT) / SCALE))
CONFIDENCE_MIDPOINT = 0.52
CONFIDENCE_SCALE = 0.035
#: neighbours further than this are never needed (beyond the suggestion distance)
NEIGHBOUR_CUTOFF = 0.70
#: in a crowded block of the nearest-face search, every this-many-th reference sets the bar
_SAMPLE_STRIDE = 8


def confidence_for(distance: float) -> float:
    """How sure a face-to-person distance makes us (0..1; 0.5 at :data:`CONFIDENCE_MIDPOINT`)."""
    z = (distance - CONFIDENCE_MIDPOINT) / CONFIDENCE_SCALE
    return 1.0 / (1.0 + math.exp(min(60.0, max(-60.0, z))))


def load_embeddings(s: Session, where: Sequence[ColumnElement[bool]]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 matrix) of the faces matching ``where``."""
    ids, rows = [], []
    for fid, raw in s.execute(select(Face.id, Face.embedding).where(*where).order_by(Face.id)):
        ids.append(fid)
        rows.append(raw)
    return np.asarray(ids, dtype=np.int64), embedding_matrix(rows)


def nearest(queries: np.ndarray, refs: np.ndarray, k: int,
            max_distance: float = NEIGHBOUR_CUTOFF) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, its (up to) ``k`` nearest reference rows within ``max_distance``:
    (distances, indexes), both (n, k), nearest first, padded with inf / -1.

    Chunked float32 BLAS, so never an n x m matrix; only pairs under the cutoff are sorted
    (most faces have few close references), which is far cheaper than a full partition.
    The cutoff test is done on the dot products: |q - r|^2 <= c^2 <=> q.r - |r|^2/2 >=
    (|q|^2 - c^2)/2, one pass over each block instead of three; crowded blocks (a person
    with many faces near every query) need no partial sort of whole rows either (see below)."""
    n, m = len(queries), len(refs)
    dist = np.full((n, k), np.inf, dtype=np.float32)
    idx = np.full((n, k), -1, dtype=np.int64)
    if n == 0 or m == 0 or k == 0:
        return dist, idx
    refs = np.asarray(refs, dtype=np.float32)
    # one extra column makes the BLAS product q.r - |r|^2/2 directly (no pass to subtract it)
    refs_x = np.ascontiguousarray(np.hstack([refs, -np.einsum("ij,ij->i", refs, refs)[:, None] / np.float32(2.0)]))
    cut2 = np.float32(max_distance * max_distance)
    rows = max(64, 8_000_000 // m)
    sampled = m >= 4 * _SAMPLE_STRIDE * k
    for a in range(0, n, rows):
        q = np.asarray(queries[a:a + rows], dtype=np.float32)
        qn = np.einsum("ij,ij->i", q, q)
        g = np.hstack([q, np.ones((len(q), 1), dtype=np.float32)]) @ refs_x.T   # |q - r|^2 = |q|^2 - 2g
        need = (qn - cut2) / np.float32(2.0)
        if sampled:
            sample = g[:, ::_SAMPLE_STRIDE]
            if np.count_nonzero(sample >= need[:, None]) * _SAMPLE_STRIDE > 8 * k * len(q):
                # crowded (many references close to every face): raise each row's bar to the
                # k-th best of every _SAMPLE_STRIDE-th reference. A subset's k-th best is never
                # better than the whole row's, so the true k nearest all pass; about k x stride do.
                kth = np.partition(sample, sample.shape[1] - k, axis=1)[:, sample.shape[1] - k]
                need = np.maximum(need, kth)
        close = g >= need[:, None]
        r, c = np.nonzero(close)
        if len(r) == 0:
            continue
        dd = np.maximum(qn[r] - 2.0 * g[r, c], 0.0)
        order = np.argsort(r * 4.0 + dd)      # by row (ascending, as nonzero gives them), then distance
        r, c, dd = r[order], c[order], dd[order]
        first = np.searchsorted(r, r, side="left")
        rank = np.arange(len(r)) - first
        keep = rank < k
        r, c, dd, rank = r[keep], c[keep], dd[keep], rank[keep]
        dist[a + r, rank] = np.sqrt(dd)
        idx[a + r, rank] = c
    return dist, idx



def person_distances(dist_row: np.ndarray, owner_row: np.ndarray, rejected: set[int] | frozenset[int] = frozenset()
                     ) -> dict[int, float]:
    """{person: mean distance to their K_PER_PERSON nearest confirmed faces} from one face's
    neighbour list (distances sorted, owners aligned; -1 = padding); rejected people left out."""
    per: dict[int, list[float]] = {}
    for d, pid in zip(dist_row.tolist(), owner_row.tolist(), strict=True):
        if pid < 0 or d == math.inf:
            break
        if pid in rejected:
            continue
        got = per.setdefault(pid, [])
        if len(got) < K_PER_PERSON:
            got.append(d)
    return {pid: sum(v) / len(v) for pid, v in per.items()}


def choose_evidence(ids: np.ndarray, mat: np.ndarray, quality: np.ndarray, cap: int | None = None) -> np.ndarray:
    """Which of one person's confirmed faces serve as evidence: positions into ``ids``,
    ascending. All of them when there are at most ``cap`` (default
    :data:`EVIDENCE_PER_PERSON`); otherwise the
    :data:`EVIDENCE_BEST_QUALITY` best-quality faces (ties: lowest id), then farthest-point
    sampling over the others: each next pick is the face furthest from every face picked so
    far (ties: lowest id), so the evidence covers how the person looks in all their photos
    (ages, angles, light), not only their most typical face.

    Depends only on the set of faces (not on their order), so an index updated face by face
    picks exactly what a fresh build picks."""
    cap = EVIDENCE_PER_PERSON if cap is None else cap
    n = len(ids)
    if n <= cap:
        return np.arange(n)
    by_id = np.argsort(ids, kind="stable")
    ids, mat, quality = ids[by_id], np.ascontiguousarray(mat[by_id], dtype=np.float32), quality[by_id]
    best = min(EVIDENCE_BEST_QUALITY, cap // 2)
    order = np.lexsort((ids, -quality))
    picked = np.sort(order[:best])
    cand = np.sort(order[best:])            # ascending id: argmax's first hit is the lowest id
    cm = mat[cand]
    cn = np.einsum("ij,ij->i", cm, cm)
    sm = mat[picked]
    sn = np.einsum("ij,ij->i", sm, sm)
    if best:
        dmin = (cn[:, None] + sn[None, :] - 2.0 * (cm @ sm.T)).min(axis=1)
    else:
        dmin = np.full(len(cand), np.inf, dtype=np.float32)
    taken = np.zeros(len(cand), dtype=bool)
    extra = []
    for _ in range(cap - best):
        j = int(np.argmax(np.where(taken, -np.inf, dmin)))
        taken[j] = True
        extra.append(j)
        np.minimum(dmin, cn + cn[j] - 2.0 * (cm @ cm[j]), out=dmin)
    chosen = np.concatenate([picked, cand[np.asarray(extra, dtype=np.int64)]])
    return np.sort(by_id[chosen])


def evidence_positions(ids: np.ndarray, owners: np.ndarray, mat: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the rows that are evidence, :func:`choose_evidence` per owner."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((ids, owners))
    cuts = np.flatnonzero(np.diff(owners[order])) + 1
    keep = []
    for grp in np.split(order, cuts):
        keep.append(grp if len(grp) <= EVIDENCE_PER_PERSON else grp[choose_evidence(ids[grp], mat[grp], quality[grp])])
    return np.sort(np.concatenate(keep))


def person_scores(pool_ids: np.ndarray, pool_mat: np.ndarray, ref_ids: np.ndarray, ref_owner: np.ndarray,
                  ref_mat: np.ndarray, ref_quality: np.ndarray, rejected: dict[int, set[int]]
                  ) -> tuple[dict[int, dict[int, float]], dict[int, float]]:
    """(face id -> {person: distance}, face id -> floor) for the pool against the confirmed
    faces ``ref_*`` (each person's evidence faces: see :func:`evidence_positions`; rejected
    people left out, faces with nobody within :data:`NEIGHBOUR_CUTOFF` left out). The floor
    is the distance of the last of the :data:`TOP_K` neighbours found (or the cutoff): a
    person not listed is at least that far, which a margin rule needs when one person fills
    all the neighbours."""
    if len(ref_ids) == 0 or len(pool_ids) == 0:
        return {}, {}
    keep = evidence_positions(ref_ids, ref_owner, ref_mat, ref_quality)
    evidence = np.ascontiguousarray(ref_mat[keep])
    owner = np.append(ref_owner[keep], -1)  # -1: padding indexes the trailing -1
    dist, idx = nearest(pool_mat, evidence, TOP_K)
    owner_rows = owner[idx]
    scores: dict[int, dict[int, float]] = {}
    floor: dict[int, float] = {}
    for n in np.flatnonzero(idx[:, 0] >= 0).tolist():
        fid = int(pool_ids[n])
        got = person_distances(dist[n], owner_rows[n], rejected.get(fid, set()))
        if got:
            scores[fid] = got
            floor[fid] = float(dist[n, -1]) if idx[n, -1] >= 0 else NEIGHBOUR_CUTOFF
    return scores, floor


def face_person_distances(s: Session, pool_ids: np.ndarray, pool_mat: np.ndarray) -> dict[int, dict[int, float]]:
    """face id -> {named person: distance} for the pool, as the suggestions score them
    (:func:`person_scores` against every live confirmed face, with the library's "not this
    person" answers)."""
    ids, owners, quality, raw = [], [], [], []
    for fid, pid, q, emb in s.execute(
            select(Face.id, Face.person_id, Face.quality, Face.embedding)
            .where(live(), Face.person_id.is_not(None), Face.assignment == Assignment.confirmed).order_by(Face.id)):
        ids.append(fid)
        owners.append(pid)
        quality.append(q or 0.0)
        raw.append(emb)
    rejected: dict[int, set[int]] = {}
    for fid, pid in s.execute(select(FaceRejection.face_id, FaceRejection.person_id)):
        rejected.setdefault(fid, set()).add(pid)
    scores, _floor = person_scores(pool_ids, pool_mat, np.asarray(ids, dtype=np.int64),
                                   np.asarray(owners, dtype=np.int64), embedding_matrix(raw),
                                   np.asarray(quality, dtype=np.float64), rejected)
    return scores


__all__ = ["K_PER_PERSON", "TOP_K", "EVIDENCE_PER_PERSON", "EVIDENCE_BEST_QUALITY", "SUGGEST_MAX_DISTANCE",
           "CONFIDENCE_MIDPOINT", "CONFIDENCE_SCALE", "NEIGHBOUR_CUTOFF", "confidence_for", "load_embeddings",
           "nearest", "person_distances", "choose_evidence", "evidence_positions", "person_scores",
           "face_person_distances"]
