"""Grouping unnamed faces with DBSCAN, and merging a new grouping into the library without
undoing anything the user did.

What a clustering run touches — and what it never touches:

* only faces that belong to nobody (no person, or only a pending *suggestion*) and that
  are not in a group the user made with "split" are clustered; confirmed faces,
  auto-assigned faces, "not a face" detections and the user's "not this person" answers are
  left exactly as they are, and named people keep their names and faces;
* cluster ids stay stable: a new cluster that shares at least half of its members (Jaccard
  >= :data:`KEEP_ID_JACCARD`) with a cluster of the previous run keeps that cluster's id;
* each new cluster (and each unclustered face) is compared with the named people
  (:mod:`organizer.suggestions`): when it is within :data:`AUTO_ASSIGN_DISTANCE` of one
  person and clearly further (:data:`AUTO_ASSIGN_MARGIN`) from everyone else its faces are
  *auto-assigned* to that person (``assignment = auto``: shown as theirs, never used as
  evidence, the user can still remove them); when it is only within the suggestion distance
  it becomes a *suggestion* the user answers. Never is it merged into a person silently
  otherwise, and never into a person the user rejected for that face.

Scale: the eps-neighbourhood graph is built in row blocks with float32 BLAS (no n x n
matrix is ever held), and scikit-learn's DBSCAN runs on that sparse graph
(``metric="precomputed"``). Faces are compared with at most
:data:`organizer.suggestions.EVIDENCE_PER_PERSON` confirmed faces per person, so people with
thousands of confirmed faces do not make re-clustering slow.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import DBSCAN
from sqlalchemy import delete, or_, select, update

from .config import Settings
from .db import Library
from .errors import InvalidRequest
from .ids import as_id
from .labelling import refresh_cluster_sizes
from .models import Assignment, Cluster, ClusterRun, Face, Person
from .neighbours import SUGGEST_MAX_DISTANCE, confidence_for, face_person_distances, load_embeddings
from .queries import FaceState, live, unowned

if TYPE_CHECKING:
    from .scanner import ScanReport

#: a new cluster keeps an old cluster's id when they share this fraction of members
KEEP_ID_JACCARD = 0.5
#: auto-assign a cluster/face to a named person when its distance to them (mean of the
#: 3 nearest confirmed faces) is at most this ... (measured on lfw-dev: see README)
AUTO_ASSIGN_DISTANCE = 0.40
#: ... and every other person is at least this much further away
AUTO_ASSIGN_MARGIN = 0.10
#: elements of one distance block (rows x all faces); 16M float32 = 64 MB
BLOCK_ELEMENTS = 16_000_000
#: up to this many faces scikit-learn's DBSCAN runs on the sparse graph; above, the streaming one
SKLEARN_MAX = 20_000


@dataclass
class ClusterReport:
    run_id: int
    eps: float
    min_samples: int
    #: faces that were clustered (the unnamed ones)
    faces: int
    clusters: int
    noise: int
    #: clusters that kept the id of a cluster of the previous run
    kept: int
    created: int
    removed: int
    auto_assigned: int
    suggested: int
    seconds: float

    def summary(self) -> str:
        return (f"{self.faces} unnamed faces -> {self.clusters} clusters ({self.kept} kept their id, "
                f"{self.created} new), {self.noise} unclustered; {self.auto_assigned} faces auto-assigned "
                f"to named people, {self.suggested} with a suggestion ({self.seconds:.1f}s)")


def radius_graph(mat: np.ndarray, eps: float) -> sparse.csr_matrix:
    """Sparse symmetric matrix of the distances between rows closer than ``eps``
    (diagonal left empty). Row blocks against the rest: memory is one block, not n x n."""
    n = len(mat)
    mat = np.ascontiguousarray(mat, dtype=np.float32)
    norms = np.einsum("ij,ij->i", mat, mat)
    eps2 = np.float32(eps * eps)
    rows_per_block = max(32, BLOCK_ELEMENTS // max(n, 1))
    ii, jj, dd = [], [], []
    for a in range(0, n, rows_per_block):
        b = min(n, a + rows_per_block)
        # only columns >= a: the lower triangle is the mirror image
        g = mat[a:b] @ mat[a:].T
        g *= -2.0
        g += norms[a:b, None]
        g += norms[None, a:]
        r, c = np.nonzero(g <= eps2)
        c += a
        r += a
        keep = c > r
        r, c = r[keep], c[keep]
        d2 = g[r - a, c - a]
        ii.append(r)
        jj.append(c)
        dd.append(np.sqrt(np.maximum(d2, 0.0)))
    if ii:
        r = np.concatenate(ii)
        c = np.concatenate(jj)
        d = np.concatenate(dd).astype(np.float32)
    else:
        r = c = np.zeros(0, dtype=np.int64)
        d = np.zeros(0, dtype=np.float32)
    # a stored 0 would be read as "not a neighbour": identical embeddings get a tiny distance
    d = np.maximum(d, np.float32(1e-6))
    graph = sparse.coo_matrix((np.concatenate([d, d]), (np.concatenate([r, c]), np.concatenate([c, r]))),
                              shape=(n, n))
    return graph.tocsr()


def _blocks(mat: np.ndarray, eps: float):  # type: ignore[no-untyped-def]
    """Yield (rows, cols) index arrays of every pair i < j closer than ``eps``, one row
    block at a time (float32 BLAS against the rows after it; nothing n x n is kept)."""
    n = len(mat)
    norms = np.einsum("ij,ij->i", mat, mat)
    # |x - y|^2 <= eps^2  <=>  x.y - |y|^2/2 >= (|x|^2 - eps^2)/2 : two passes over a block
    half = (norms / 2).astype(np.float32)
    need = ((norms - eps * eps) / 2).astype(np.float32)
    step = max(32, BLOCK_ELEMENTS // max(n, 1))
    for a in range(0, n, step):
        b = min(n, a + step)
        g = mat[a:b] @ mat[a:].T
        g -= half[None, a:]
        close = g >= need[a:b, None]
        close[:, : b - a] &= np.triu(np.ones((b - a, b - a), dtype=bool), k=1)
        r, c = np.nonzero(close)
        yield (r + a).astype(np.int32), (c + a).astype(np.int32)


def dbscan_labels(mat: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels (-1 = noise) of the rows of ``mat`` under Euclidean distance.

    Exactly DBSCAN's definition (core points: at least ``min_samples`` points, themselves
    included, within ``eps``; clusters: core points linked through core neighbours; border
    points join a neighbouring core's cluster), computed without holding the neighbourhood
    graph: each row block's core-core links are reduced to a spanning star of its connected
    pieces before they are kept, so memory stays linear even when one person has thousands
    of faces. Small inputs go through scikit-learn's DBSCAN on the sparse graph, which the
    tests use as the reference for this one."""
    n = len(mat)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    mat = np.ascontiguousarray(mat, dtype=np.float32)
    if n <= SKLEARN_MAX:
        return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(radius_graph(mat, eps)).labels_
    return dbscan_streaming(mat, eps, min_samples)


def dbscan_streaming(mat: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    n = len(mat)
    if min_samples <= 2:
        # every point with one neighbour is a core point: one pass suffices
        degree = None
    else:
        degree = np.ones(n, dtype=np.int64)
        for r, c in _blocks(mat, eps):
            degree += np.bincount(r, minlength=n) + np.bincount(c, minlength=n)
    core = np.ones(n, dtype=bool) if degree is None else degree >= min_samples
    border_of = np.full(n, -1, dtype=np.int64)
    links_r, links_c = [], []
    has_neighbour = np.zeros(n, dtype=bool)
    for r, c in _blocks(mat, eps):
        if len(r) == 0:
            continue
        has_neighbour[r] = True
        has_neighbour[c] = True
        both = core[r] & core[c]
        for a_, b_ in ((r, c), (c, r)):  # a non-core point next to a core point is a border point
            sel = ~core[a_] & core[b_] & (border_of[a_] < 0)
            border_of[a_[sel]] = b_[sel]
        r, c = r[both], c[both]
        if len(r) == 0:
            continue
        nodes, inv = np.unique(np.concatenate([r, c]), return_inverse=True)
        m = len(nodes)
        small = sparse.coo_matrix((np.ones(len(r), dtype=np.int8), (inv[: len(r)], inv[len(r):])), shape=(m, m))
        _k, comp = connected_components(small, directed=False)
        first = np.full(_k, -1, dtype=np.int64)
        first[comp[::-1]] = np.arange(m)[::-1]
        links_r.append(nodes)
        links_c.append(nodes[first[comp]])
    if degree is None:
        core = has_neighbour
    if links_r:
        r = np.concatenate(links_r)
        c = np.concatenate(links_c)
    else:
        r = c = np.zeros(0, dtype=np.int64)
    graph = sparse.coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    _k, comp = connected_components(graph, directed=False)
    labels = np.full(n, -1, dtype=np.int64)
    labels[core] = comp[core]
    borders = np.flatnonzero(~core & (border_of >= 0))
    labels[borders] = comp[border_of[borders]]
    # renumber 0..k-1 in order of first appearance
    used = labels >= 0
    _u, first_idx, inv = np.unique(labels[used], return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first_idx))
    labels[used] = order[inv]
    return labels


def match_clusters(new_groups: list[list[int]], old_groups: dict[int, set[int]]) -> dict[int, int]:
    """{index of a new group: old cluster id it keeps}: greedy by overlap, Jaccard >= 0.5."""
    owner: dict[int, int] = {}
    for cid, members in old_groups.items():
        for f in members:
            owner[f] = cid
    pairs = []
    for n, group in enumerate(new_groups):
        overlap: dict[int, int] = {}
        for f in group:
            if f in owner:
                overlap[owner[f]] = overlap.get(owner[f], 0) + 1
        for cid, shared in overlap.items():
            jaccard = shared / (len(group) + len(old_groups[cid]) - shared)
            if jaccard >= KEEP_ID_JACCARD:
                pairs.append((jaccard, shared, n, cid))
    pairs.sort(key=lambda p: (-p[0], -p[1], p[2], p[3]))
    result: dict[int, int] = {}
    used: set[int] = set()
    for _j, _s, n, cid in pairs:
        if n not in result and cid not in used:
            result[n] = cid
            used.add(cid)
    return result


@dataclass
class _Decision:
    person_id: int
    distance: float
    auto: bool
    face_ids: list[int]


def decide_people(groups: list[list[int]], face_dists: dict[int, dict[int, float]]) -> list[_Decision | None]:
    """For each group of faces, whether it matches a named person (auto or suggested).

    ``face_dists``: face id -> {person id: distance} (rejected people already left out)."""
    out: list[_Decision | None] = []
    for group in groups:
        votes: dict[int, list[float]] = {}
        for f in group:
            for pid, d in face_dists.get(f, {}).items():
                votes.setdefault(pid, []).append(d)
        # median over the whole group (a face far from the person counts as far)
        med = {pid: float(np.median(ds + [9.9] * (len(group) - len(ds)))) for pid, ds in votes.items()}
        close = {pid: d for pid, d in med.items() if d <= SUGGEST_MAX_DISTANCE}
        if not close:
            out.append(None)
            continue
        best = min(close, key=lambda p: (close[p], p))
        d = close[best]
        runner_up = min((v for p, v in med.items() if p != best), default=9.9)
        auto = d <= AUTO_ASSIGN_DISTANCE and runner_up - d >= AUTO_ASSIGN_MARGIN
        limit = SUGGEST_MAX_DISTANCE
        members = [f for f in group if face_dists.get(f, {}).get(best, 9.9) <= limit]
        out.append(_Decision(best, d, auto, members) if members else None)
    return out


def cluster_faces(lib: Library, *, eps: float | None = None, min_samples: int | None = None,
                  settings: Settings | None = None,
                  progress: Callable[[str], None] | None = None) -> ClusterReport:
    """Cluster the unnamed faces and merge the result into the library (see module doc).

    The distance work runs outside any write transaction; the result is then applied in one
    transaction to the faces that are still unnamed (a face the user labelled meanwhile is
    left alone)."""
    settings = settings or Settings.from_env()
    eps = settings.eps if eps is None else eps
    min_samples = settings.min_samples if min_samples is None else min_samples
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 2:
        raise InvalidRequest("eps must be a number between 0 and 2")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise InvalidRequest("min-samples must be 1 or more")
    say = progress or (lambda _msg: None)
    started = time.perf_counter()

    user_made = select(Cluster.id).where(Cluster.run_id.is_(None))
    in_pool = [live(), unowned(), or_(Face.cluster_id.is_(None), Face.cluster_id.not_in(user_made))]
    with lib.session() as s:
        say("loading faces")
        pool_ids, pool_mat = load_embeddings(s, in_pool)
        old_cluster = {fid: as_id(cid) for fid, cid in s.execute(
            select(Face.id, Face.cluster_id).where(*in_pool, Face.cluster_id.is_not(None)))}
        say("comparing with named people")
        face_dists = face_person_distances(s, pool_ids, pool_mat)

    say(f"clustering {len(pool_ids)} faces")
    labels = dbscan_labels(pool_mat, float(eps), int(min_samples))
    groups_by_label: dict[int, list[int]] = {}
    noise: list[int] = []
    for fid, lab in zip(pool_ids.tolist(), labels.tolist()):
        (noise.append(fid) if lab < 0 else groups_by_label.setdefault(lab, []).append(fid))
    groups = [groups_by_label[k] for k in sorted(groups_by_label)]
    old_groups: dict[int, set[int]] = {}
    for fid, cid in old_cluster.items():
        old_groups.setdefault(cid, set()).add(fid)
    keep = match_clusters(groups, old_groups)
    decisions = decide_people(groups, face_dists)
    single = decide_people([[f] for f in noise], face_dists)

    say("saving")
    with lib.session() as s:
        run = ClusterRun(eps=float(eps), min_samples=int(min_samples), faces=len(pool_ids),
                         clusters=len(groups), noise=len(noise))
        s.add(run)
        s.flush()
        current = {fid: FaceState(pid, a, cid) for fid, pid, a, cid in s.execute(
            select(Face.id, Face.person_id, Face.assignment, Face.cluster_id).where(*in_pool))}
        people = set(s.scalars(select(Person.id)))
        target: dict[int, FaceState] = {}
        cluster_ids: list[int] = []
        existing = set(s.scalars(select(Cluster.id).where(Cluster.id.in_([c for c in keep.values()])))) if keep else set()
        fresh = [Cluster(run_id=run.id, size=0) for n in range(len(groups)) if keep.get(n) not in existing]
        s.add_all(fresh)
        s.flush()
        fresh_ids = iter(c.id for c in fresh)
        for n, group in enumerate(groups):
            kept = keep.get(n)
            cid = kept if kept is not None and kept in existing else next(fresh_ids)
            cluster_ids.append(cid)
            for f in group:
                target[f] = FaceState(None, None, cid)
        if existing:
            s.execute(update(Cluster).where(Cluster.id.in_(existing)).values(run_id=run.id))
        for f in noise:
            target[f] = FaceState(None, None, None)
        auto_n = sugg_n = 0
        for group_ids, decision in [(g, d) for g, d in zip(cluster_ids, decisions)] + [(None, d) for d in single]:
            if decision is None or decision.person_id not in people:
                continue
            conf = confidence_for(decision.distance)
            for f in decision.face_ids:
                if decision.auto:
                    target[f] = FaceState(decision.person_id, Assignment.auto, None, conf)
                    auto_n += 1
                else:
                    target[f] = FaceState(decision.person_id, Assignment.suggested, target[f].cluster_id, conf)
                    sugg_n += 1
        # faces labelled by the user while we were computing are not in `current`: theirs now
        changes = [{"id": f, **new._asdict()} for f, new in target.items()
                   if f in current and not current[f].same_place(new)]
        for a in range(0, len(changes), 5000):
            s.execute(update(Face), changes[a:a + 5000])
        s.flush()
        stale = list(s.scalars(select(Cluster.id).where(
            Cluster.run_id.is_not(None), Cluster.run_id != run.id,
            ~select(Face.id).where(Face.cluster_id == Cluster.id).exists())))
        if stale:
            s.execute(delete(Cluster).where(Cluster.id.in_(stale)))
        s.flush()
        refresh_cluster_sizes(s, cluster_ids + list(old_groups))
        kept = sum(1 for n in range(len(groups)) if keep.get(n) == cluster_ids[n])
        run.clusters = len(groups)
        report = ClusterReport(
            run_id=run.id, eps=float(eps), min_samples=int(min_samples), faces=len(pool_ids),
            clusters=len(groups), noise=len(noise), kept=kept, created=len(groups) - kept,
            removed=len(stale), auto_assigned=auto_n, suggested=sugg_n,
            seconds=time.perf_counter() - started)
    return report


def cluster_after_scan(lib: Library, scan: ScanReport, *, settings: Settings | None = None,
                       progress: Callable[[str], None] | None = None) -> ClusterReport | None:
    """Group the faces a scan added right away (label-preserving, as :func:`cluster_faces`),
    so the next step is naming them. None, and nothing done, when the scan added and removed
    no face: the groups would come out as they are."""
    if not (scan.faces_added or scan.faces_removed):
        return None
    return cluster_faces(lib, settings=settings, progress=progress)


def pairwise_precision_recall(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Pairwise precision/recall of a clustering against true identities. Noise (-1) is
    a singleton: it pairs with nothing."""
    from collections import Counter

    labels = np.asarray(labels)
    truth = np.asarray(truth)
    clustered = labels >= 0
    pairs = Counter(zip(labels[clustered].tolist(), truth[clustered].tolist()))
    same_both = sum(c * (c - 1) // 2 for c in pairs.values())
    same_cluster = sum(c * (c - 1) // 2 for c in Counter(labels[clustered].tolist()).values())
    same_truth = sum(c * (c - 1) // 2 for c in Counter(truth.tolist()).values())
    precision = same_both / same_cluster if same_cluster else 1.0
    recall = same_both / same_truth if same_truth else 1.0
    return precision, recall


__all__ = ["ClusterReport", "cluster_faces", "cluster_after_scan", "dbscan_labels", "radius_graph", "match_clusters",
           "pairwise_precision_recall", "AUTO_ASSIGN_DISTANCE", "AUTO_ASSIGN_MARGIN"]
