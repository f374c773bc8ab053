"""Compact, constraint-respecting groups of faces: pure functions over embeddings.

No database, no dlib: every function takes an ``(n, d)`` float matrix of embeddings
(Euclidean distance) plus one photo id per face, and returns group labels (``-1`` = left
ungrouped; renumbered ``0..k-1`` in order of each group's first face) or person ids.
:mod:`organizer.clustering` loads the faces, calls these and stores the result;
``bench/grouping.py`` measures them (figures: README "Clustering and labelling people").

Why not plain DBSCAN: it is single-link chaining, so faces far apart share a group as long
as a path of close faces joins them (that is how young children of different families ended
up together). The rule, :func:`compact_groups` (:func:`refine_groups`: steps 2-3 on labels
from any connecting clustering):

1. **connect** with DBSCAN (``eps`` 0.42, ``min_samples`` 2), or Chinese whispers;
2. **compact** (:func:`split_loose`): a group stays only when every face is within
   ``max_radius`` of its medoid and ``eps - eps_step`` does not break it into pieces of
   ``split_min_piece`` faces or more; otherwise it is re-clustered tighter, down to
   ``min_eps``; a piece still loose there keeps the faces within ``max_radius`` of its
   medoid and the rest is grouped again the same way. So no two faces of a group are ever
   further than ``2 * max_radius`` apart;
3. **cannot-link** (:func:`enforce_cannot_link`): of several faces of one photo in a group,
   only the one nearest its medoid stays.

Anchored pass (:func:`assign_to_anchors`, :func:`anchored_groups`): an unnamed face goes to
the person whose confirmed faces are nearest (mean of the ``k`` nearest, as
:mod:`organizer.neighbours` scores people) when that is within ``max_distance`` and every
other person is at least ``margin`` further; never to a person the user rejected for that
face, nor to one who already has a face in that photo (of two faces of one photo wanting one
person, the nearer wins).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import DBSCAN

#: rows x columns of one distance block (float32): 16M elements = 64 MB
BLOCK_ELEMENTS = 16_000_000
#: up to this many rows :func:`dbscan` holds the eps-graph (at most n^2 pairs: 4M = ~80 MB)
SPARSE_GRAPH_MAX = 2_000
#: distance standing in for "no confirmed face of this person"
FAR = 9.9


@dataclass(frozen=True)
class GroupingRule:
    """The thresholds of :func:`compact_groups` (measured with ``bench/grouping.py``).

    On lfw-dev (5,335 faces): precision 1.000, recall 0.956, largest medoid distance in a
    group 0.60, no same-photo pair (plain DBSCAN 0.40: 0.983 / 0.915, one 85-face group of
    11 people). ``max_radius`` 0.62: 99% of a person's faces lie within 0.584 of their own
    medoid (lfw-dev identities with 3+ faces); 0.58-0.70 give the same precision and
    recall within 0.02, below 0.55 the biggest identities are cut up (recall 0.58 at 0.50).
    ``eps``: 0.38-0.44 keep precision >= 0.999 and every 20+ group pure (recall 0.83 at
    0.38, 0.97 at 0.43); 0.46 lets a 27-face two-person group through.
    ``split_min_piece`` 3-8 behave alike; 2 splits real people (recall 0.86), 12+ lets a
    29-face group of 3 people through."""

    #: "dbscan" or "whispers" (:func:`chinese_whispers` on the k-NN graph cut at ``eps``)
    connect: str = "dbscan"
    eps: float = 0.42
    min_samples: int = 2
    knn: int = 20
    max_radius: float = 0.62
    eps_step: float = 0.03
    min_eps: float = 0.28
    #: a compact group is still split when a tighter eps breaks it into two or more pieces
    #: of at least this many faces each (0: never)
    split_min_piece: int = 5


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and ``b`` (float32, clipped at 0)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    d2 = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0.0))


def radius_graph(emb: np.ndarray, eps: float) -> sparse.csr_matrix:
    """Sparse symmetric matrix of distances between rows closer than ``eps`` (row blocks:
    memory is one block, never n x n). Zero distances are stored as 1e-6 so that they
    still count as neighbours."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n = len(emb)
    step = max(32, BLOCK_ELEMENTS // max(n, 1))
    rows, cols, vals = [], [], []
    for a in range(0, n, step):
        d = pairwise_distances(emb[a:a + step], emb)
        r, c = np.nonzero(d <= eps)
        keep = (r + a) != c
        rows.append(r[keep] + a)
        cols.append(c[keep])
        vals.append(np.maximum(d[r[keep], c[keep]], 1e-6))
    if not rows:
        return sparse.csr_matrix((n, n), dtype=np.float32)
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def dbscan(emb: np.ndarray, eps: float, min_samples: int = 2) -> np.ndarray:
    """DBSCAN labels (-1 = noise): scikit-learn's on the sparse eps-graph up to
    :data:`SPARSE_GRAPH_MAX` rows, :func:`dbscan_streaming` above. The eps-graph of one
    person's faces is nearly complete, so holding it for a group of 20,000 faces of one child
    would cost gigabytes; the streaming one keeps memory linear."""
    if len(emb) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(emb) > SPARSE_GRAPH_MAX:
        return dbscan_streaming(emb, eps, min_samples)
    graph = radius_graph(emb, eps)
    if min_samples <= 2:
        # every face with a neighbour is a core point: DBSCAN is the eps-graph's connected
        # pieces (faces alone are noise), without scikit-learn's per-call overhead, which the
        # compact rule's many small re-clusterings paid most of their time for
        _k, comp = connected_components(graph, directed=False)
        alone = (np.diff(graph.indptr) == 0) & (min_samples == 2)
        return renumber(np.where(alone, -1, comp))
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(graph).labels_.astype(np.int64)


def _blocks(mat: np.ndarray, eps: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
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


def dbscan_streaming(mat: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels without holding the neighbourhood graph: each row block's core-core
    links are reduced to a spanning star of its connected pieces before they are kept, so
    memory stays linear even when one person has thousands of faces (border points may join
    either neighbouring cluster, as in DBSCAN). Labels 0..k-1 in order of first member."""
    mat = np.ascontiguousarray(mat, dtype=np.float32)
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


def knn_graph(emb: np.ndarray, cut: float, k: int) -> sparse.csr_matrix:
    """The ``k`` nearest neighbours of each row that are closer than ``cut``, symmetrised
    (an edge is kept when either end has the other among its ``k`` nearest)."""
    graph = radius_graph(emb, cut)
    rows, cols, vals = [], [], []
    for i in range(graph.shape[0]):
        a, b = graph.indptr[i], graph.indptr[i + 1]
        idx, dist = graph.indices[a:b], graph.data[a:b]
        if len(idx) > k:
            keep = np.argpartition(dist, k - 1)[:k]
            idx, dist = idx[keep], dist[keep]
        rows.append(np.full(len(idx), i))
        cols.append(idx)
        vals.append(dist)
    n = graph.shape[0]
    if not rows:
        return sparse.csr_matrix((n, n), dtype=np.float32)
    knn = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return knn.maximum(knn.T).tocsr()


def chinese_whispers(emb: np.ndarray, cut: float, k: int = 20, iterations: int = 30, seed: int = 0) -> np.ndarray:
    """Chinese whispers (dlib's face clustering) on the k-NN graph cut at ``cut``.

    Each face repeatedly takes the label with the largest summed edge weight (1 - distance)
    among its neighbours, in a seeded random order, until nothing changes. Unlike
    single-link DBSCAN, a thin chain of faces between two dense groups is outvoted instead
    of joining them. Faces left alone are ungrouped (-1)."""
    n = len(emb)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    graph = knn_graph(emb, cut, k)
    weights = (1.0 - graph.data).astype(np.float64)
    labels = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(np.diff(graph.indptr) > 0)
    for _ in range(iterations):
        changed = 0
        for i in rng.permutation(active).tolist():
            a, b = graph.indptr[i], graph.indptr[i + 1]
            votes: dict[int, float] = {}
            for lab, w in zip(labels[graph.indices[a:b]].tolist(), weights[a:b].tolist(), strict=False):
                votes[lab] = votes.get(lab, 0.0) + w
            best = max(votes, key=lambda lab: (votes[lab], -lab))
            if best != labels[i]:
                labels[i] = best
                changed += 1
        if not changed:
            break
    sizes = np.bincount(labels, minlength=n)
    return renumber(np.where(sizes[labels] > 1, labels, -1))


def connect(emb: np.ndarray, rule: GroupingRule) -> np.ndarray:
    """Step 1 with the rule's connecting method."""
    if rule.connect == "whispers":
        return chinese_whispers(emb, rule.eps, rule.knn)
    return dbscan(emb, rule.eps, rule.min_samples)


def renumber(labels: np.ndarray) -> np.ndarray:
    """Labels 0..k-1 in order of each group's first member; -1 stays -1."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(len(labels), -1, dtype=np.int64)
    seen: dict[int, int] = {}
    for i, lab in enumerate(labels.tolist()):
        if lab >= 0:
            out[i] = seen.setdefault(lab, len(seen))
    return out


def groups_of(labels: np.ndarray) -> list[np.ndarray]:
    """Member indices of each group (label >= 0), in label order."""
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    start = np.searchsorted(sorted_labels, 0)
    if start == len(labels):
        return []
    cuts = np.flatnonzero(np.diff(sorted_labels[start:])) + 1
    return np.split(order[start:], cuts)


def medoid_distances(sub: np.ndarray) -> tuple[int, np.ndarray]:
    """(position of the medoid, distance of every row to it) for the rows of ``sub``.
    The medoid is the row with the smallest summed distance to the others; ties go to the
    first. Row blocks, so a group of many thousands of faces needs no n x n matrix."""
    n = len(sub)
    if n == 1:
        return 0, np.zeros(1, dtype=np.float32)
    step = max(32, BLOCK_ELEMENTS // n)
    sums = np.concatenate([pairwise_distances(sub[a:a + step], sub).sum(axis=1) for a in range(0, n, step)])
    m = int(np.argmin(sums))
    return m, pairwise_distances(sub[m:m + 1], sub)[0]


def medoid_radius(sub: np.ndarray) -> float:
    """The largest distance from a row of ``sub`` to its medoid."""
    return float(medoid_distances(sub)[1].max())


def _trim(sub: np.ndarray, max_radius: float) -> np.ndarray:
    """Positions of the rows of ``sub`` kept when only faces within ``max_radius`` of the
    medoid stay. Repeated until it holds for the medoid of what is kept: dropping faces can
    move the medoid, and the promise is about the kept group's own medoid."""
    kept = np.arange(len(sub))
    while len(kept):
        _m, dist = medoid_distances(sub[kept])
        if dist.max() <= max_radius:
            break
        kept = kept[dist <= max_radius]
    return kept


def _compact_pieces(sub: np.ndarray, eps: float, rule: GroupingRule) -> list[np.ndarray]:
    """Positions (into ``sub``) of compact pieces of one group; positions not in any piece
    are left ungrouped."""
    loose = medoid_radius(sub) > rule.max_radius
    tighter = round(eps - rule.eps_step, 6)
    if tighter < rule.min_eps:
        # still loose at the tightest eps: keep the ball around the medoid as one group and
        # group what lies outside it again (so a second person is not simply dropped)
        kept = _trim(sub, rule.max_radius)
        pieces: list[np.ndarray] = [kept] if len(kept) >= rule.min_samples else []
        rest = np.setdiff1d(np.arange(len(sub)), kept)
        if len(rest) >= rule.min_samples:
            for piece in groups_of(dbscan(sub[rest], eps, rule.min_samples)):
                pieces.extend(rest[piece][p] for p in _compact_pieces(sub[rest[piece]], eps, rule))
        return pieces
    if not loose and (rule.split_min_piece == 0 or len(sub) < 2 * rule.split_min_piece):
        return [np.arange(len(sub))]
    split = groups_of(dbscan(sub, tighter, rule.min_samples))
    if not loose:
        # compact, but does it fall apart into two real groups at a tighter eps?
        big = [piece for piece in split if len(piece) >= rule.split_min_piece]
        if len(big) < 2:
            return [np.arange(len(sub))]
    pieces = []
    for piece in split:
        pieces.extend(piece[p] for p in _compact_pieces(sub[piece], tighter, rule))
    return pieces


def split_loose(emb: np.ndarray, labels: np.ndarray, rule: GroupingRule) -> np.ndarray:
    """Step 2 of the module doc: every group ends up within ``rule.max_radius`` of its medoid."""
    emb = np.asarray(emb, dtype=np.float32)
    out = np.full(len(labels), -1, dtype=np.int64)
    next_label = 0
    for members in groups_of(labels):
        for piece in _compact_pieces(emb[members], rule.eps, rule):
            out[members[piece]] = next_label
            next_label += 1
    return renumber(out)


def enforce_cannot_link(emb: np.ndarray, labels: np.ndarray, photo_ids: np.ndarray,
                        min_size: int = 2) -> np.ndarray:
    """Step 3: in each group, of several faces from one photo only the one nearest the
    group's medoid stays; the others become ungrouped. A group left with fewer than
    ``min_size`` faces is dissolved."""
    emb = np.asarray(emb, dtype=np.float32)
    photo_ids = np.asarray(photo_ids)
    out = np.asarray(labels, dtype=np.int64).copy()
    for members in groups_of(labels):
        photos = photo_ids[members]
        if len(np.unique(photos)) == len(photos):
            continue
        _m, dist = medoid_distances(emb[members])
        best: dict[int, tuple[float, int]] = {}
        for face, photo, d in zip(members.tolist(), photos.tolist(), dist.tolist(), strict=False):
            if photo not in best or d < best[photo][0]:
                best[photo] = (d, face)
        keep = {face for _d, face in best.values()}
        for face in members.tolist():
            if face not in keep:
                out[face] = -1
        if len(keep) < min_size:
            out[list(keep)] = -1
    return renumber(out)


def refine_groups(emb: np.ndarray, labels: np.ndarray, photo_ids: np.ndarray,
                  rule: GroupingRule | None = None) -> np.ndarray:
    """Steps 2 and 3 over labels from any connecting clustering (e.g. clustering's DBSCAN)."""
    rule = rule or GroupingRule()
    return enforce_cannot_link(emb, split_loose(emb, labels, rule), photo_ids, rule.min_samples)


def compact_groups(emb: np.ndarray, photo_ids: np.ndarray, rule: GroupingRule | None = None) -> np.ndarray:
    """The whole rule of the module doc: DBSCAN, compactness split, cannot-link."""
    rule = rule or GroupingRule()
    return refine_groups(emb, connect(emb, rule), photo_ids, rule)


def person_distance_table(emb: np.ndarray, ref_emb: np.ndarray, ref_person: np.ndarray,
                          k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(people, table): ``table[i, j]`` = mean distance from face ``i`` to the ``k`` nearest
    confirmed faces of ``people[j]`` (all of them when the person has fewer)."""
    ref_person = np.asarray(ref_person, dtype=np.int64)
    people = np.unique(ref_person)
    table = np.full((len(emb), len(people)), FAR, dtype=np.float32)
    if len(emb) == 0 or len(people) == 0:
        return people, table
    emb = np.asarray(emb, dtype=np.float32)
    ref_emb = np.asarray(ref_emb, dtype=np.float32)
    for j, person in enumerate(people.tolist()):
        refs = ref_emb[ref_person == person]
        kk = min(k, len(refs))
        step = max(32, BLOCK_ELEMENTS // max(len(refs), 1))
        for a in range(0, len(emb), step):
            d = pairwise_distances(emb[a:a + step], refs)
            if kk < len(refs):
                d = np.partition(d, kk - 1, axis=1)[:, :kk]
            table[a:a + step, j] = d.mean(axis=1)
    return people, table


def assign_to_anchors(emb: np.ndarray, photo_ids: np.ndarray, ref_emb: np.ndarray, ref_person: np.ndarray,
                      ref_photo_ids: np.ndarray, *, max_distance: float = 0.45, margin: float = 0.10,
                      rejected: Mapping[int, Set[int]] | None = None, k: int = 3) -> np.ndarray:
    """Person id for each row of ``emb`` (-1: none) from the confirmed faces ``ref_*``.

    A face gets person P when its distance to P (mean of the ``k`` nearest confirmed faces)
    is at most ``max_distance``, every other person is at least ``margin`` further, P is not
    in ``rejected[row]``, and P has no confirmed face in the face's photo. When several
    faces of one photo qualify for P, only the nearest gets P."""
    n = len(emb)
    out = np.full(n, -1, dtype=np.int64)
    people, table = person_distance_table(emb, ref_emb, ref_person, k)
    if n == 0 or len(people) == 0:
        return out
    col = {p: j for j, p in enumerate(people.tolist())}
    photo_ids = np.asarray(photo_ids)
    for photo, person in set(zip(np.asarray(ref_photo_ids).tolist(), np.asarray(ref_person).tolist(), strict=False)):
        rows = np.flatnonzero(photo_ids == photo)
        table[rows, col[person]] = FAR
    for row, persons in (rejected or {}).items():
        for person in persons:
            if person in col:
                table[row, col[person]] = FAR
    order = np.argsort(table, axis=1)
    best = order[:, 0]
    d1 = table[np.arange(n), best]
    d2 = table[np.arange(n), order[:, 1]] if len(people) > 1 else np.full(n, FAR, dtype=np.float32)
    ok = (d1 <= max_distance) & (d2 - d1 >= margin)
    taken: dict[tuple[int, int], tuple[float, int]] = {}
    for row in np.flatnonzero(ok).tolist():
        key = (int(photo_ids[row]), int(best[row]))
        if key not in taken or d1[row] < taken[key][0]:
            taken[key] = (float(d1[row]), row)
    for (_photo, j), (_d, row) in taken.items():
        out[row] = people[j]
    return out


def anchored_groups(emb: np.ndarray, photo_ids: np.ndarray, anchors: np.ndarray, *, max_distance: float = 0.45,
                    margin: float = 0.10, rule: GroupingRule | None = None,
                    rejected: Mapping[int, Set[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The second pass over a whole library: ``anchors[i]`` is the confirmed person of face
    ``i`` or -1. Returns ``(person, labels)``: ``person[i]`` is the anchor, or the person
    :func:`assign_to_anchors` gave an unanchored face, or -1; ``labels`` groups the faces
    still without a person with :func:`compact_groups` (-1 elsewhere). ``rejected`` is
    keyed by row of ``emb``."""
    anchors = np.asarray(anchors, dtype=np.int64)
    photo_ids = np.asarray(photo_ids)
    emb = np.asarray(emb, dtype=np.float32)
    ref = np.flatnonzero(anchors >= 0)
    pool = np.flatnonzero(anchors < 0)
    pool_rejected = None
    if rejected:
        where = {int(r): i for i, r in enumerate(pool.tolist())}
        pool_rejected = {where[r]: v for r, v in rejected.items() if r in where}
    person = anchors.copy()
    person[pool] = assign_to_anchors(emb[pool], photo_ids[pool], emb[ref], anchors[ref], photo_ids[ref],
                                     max_distance=max_distance, margin=margin, rejected=pool_rejected)
    rest = np.flatnonzero(person < 0)
    labels = np.full(len(emb), -1, dtype=np.int64)
    labels[rest] = compact_groups(emb[rest], photo_ids[rest], rule)
    return person, labels


__all__ = ["GroupingRule", "anchored_groups", "assign_to_anchors", "compact_groups", "dbscan", "dbscan_streaming",
           "enforce_cannot_link", "groups_of", "medoid_distances", "medoid_radius", "pairwise_distances",
           "person_distance_table", "radius_graph", "refine_groups", "renumber", "split_loose"]
