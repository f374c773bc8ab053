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

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse
from sklearn.cluster import DBSCAN
from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.orm import Session

from . import neighbours
from .config import Settings
from .constraints import (
    OWNING,
    KeptApart,
    age_at,
    birth_dates,
    born_after,
    load_split_records,
    new_split_records,
    people_in_photos,
)
from .db import Library
from .errors import InvalidRequest
from .grouping import FAR, GroupingRule, dbscan_streaming, pairwise_distances, refine_groups, renumber
from .ids import as_id
from .labelling import refresh_cluster_sizes
from .models import (
    Assignment,
    Cluster,
    ClusterRun,
    Face,
    FaceRejection,
    LibraryMeta,
    Person,
    Photo,
    embedding_matrix,
    utcnow,
)
from .neighbours import (
    K_PER_PERSON,
    SUGGEST_MAX_DISTANCE,
    confidence_for,
)
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
#: the anchored pass (measured with bench/grouping.py on lfw-dev after naming the largest
#: group of every identity: 0.45 / 0.10 gave 105 more faces, all right; margin 0.05: 135,
#: 97.7% right; margin 0: 91.8% right; 0.50 / 0.10: 97.4% right): a face is auto-assigned
#: to the nearest named person when within this distance of their confirmed faces ...
ANCHOR_MAX_DISTANCE = 0.45
#: ... and every other person is at least this much further
ANCHOR_MARGIN = 0.10
#: a person under this age at a photo's date is compared as a child there ...
CHILD_AGE = 16
#: ... with their confirmed faces from photos taken within this many years of it ...
CHILD_WINDOW_YEARS = 3
#: ... and auto-assigned only with this many times the usual margin (README: how chosen)
CHILD_MARGIN_FACTOR = 1.5


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
    #: of the auto-assigned faces, those the anchored pass gave before grouping
    anchored: int = 0

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
    return dbscan_streaming(mat, eps, min_samples)  # organizer.grouping


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


@dataclass
class FaceRules:
    """What the machine may not do with the faces it is deciding about (module doc, "what
    keeps faces apart"). Built once per run by :func:`load_rules`; :meth:`take` records each
    machine assignment, so later ones in the same run see it."""

    #: face id -> photo id, for the faces being decided about
    photo_of: dict[int, int] = field(default_factory=dict)
    #: photo id -> people who own a face in it (confirmed, auto, or given in this run)
    in_photo: dict[int, set[int]] = field(default_factory=dict)
    kept: KeptApart = field(default_factory=KeptApart)
    #: (face id, person id) judged as a child's face: wider margin (:data:`CHILD_MARGIN_FACTOR`)
    child: set[tuple[int, int]] = field(default_factory=set)

    def allows(self, face_id: int, person_id: int) -> bool:
        photo = self.photo_of.get(face_id, -1)
        return person_id not in self.in_photo.get(photo, ()) and self.kept.allows(face_id, person_id)

    def take(self, face_id: int, person_id: int) -> None:
        photo = self.photo_of.get(face_id)
        if photo is not None:
            self.in_photo.setdefault(photo, set()).add(person_id)
        self.kept.take(face_id, person_id)

    def margin(self, face_ids: list[int], person_id: int, base: float) -> float:
        return base * CHILD_MARGIN_FACTOR if any((f, person_id) in self.child for f in face_ids) else base


def decide_people(groups: list[list[int]], face_dists: dict[int, dict[int, float]],
                  rules: FaceRules | None = None) -> list[_Decision | None]:
    """For each group of faces, whether it matches a named person (auto or suggested).

    ``face_dists``: face id -> {person id: distance} (people the face may not have already
    left out). With ``rules``, across all groups at once: no face goes to a person who has
    a face in its photo, or who owns a face the user kept apart from it, and of several
    faces of one photo only one gets a person (auto-assignments first, then the nearest)."""
    rules = rules or FaceRules()
    out: list[_Decision | None] = []
    for group in groups:
        votes: dict[int, list[float]] = {}
        for f in group:
            for pid, d in face_dists.get(f, {}).items():
                votes.setdefault(pid, []).append(d)
        # median over the whole group (a face far from the person counts as far)
        med = {pid: float(np.median(ds + [FAR] * (len(group) - len(ds)))) for pid, ds in votes.items()}
        close = {pid: d for pid, d in med.items() if d <= SUGGEST_MAX_DISTANCE}
        if not close:
            out.append(None)
            continue
        best = min(close, key=lambda p: (close[p], p))
        d = close[best]
        runner_up = min((v for p, v in med.items() if p != best), default=FAR)
        auto = d <= AUTO_ASSIGN_DISTANCE and runner_up - d >= rules.margin(group, best, AUTO_ASSIGN_MARGIN)
        members = [f for f in group if face_dists.get(f, {}).get(best, FAR) <= SUGGEST_MAX_DISTANCE]
        out.append(_Decision(best, d, auto, members) if members else None)
    # one person per photo: autos first, then by each face's own distance
    wanted = sorted(((not dec.auto, face_dists[f][dec.person_id], f, n)
                     for n, dec in enumerate(out) if dec is not None for f in dec.face_ids))
    granted: dict[int, set[int]] = {}
    for _suggested, _d, f, n in wanted:
        dec = out[n]
        assert dec is not None
        if rules.allows(f, dec.person_id):
            rules.take(f, dec.person_id)
            granted.setdefault(n, set()).add(f)
    for n, dec in enumerate(out):
        if dec is not None:
            keep = [f for f in dec.face_ids if f in granted.get(n, ())]
            out[n] = _Decision(dec.person_id, dec.distance, dec.auto, keep) if keep else None
    return out


def anchor_faces(face_dists: dict[int, dict[int, float]], floor: dict[int, float], rules: FaceRules, *,
                 max_distance: float = ANCHOR_MAX_DISTANCE,
                 margin: float = ANCHOR_MARGIN) -> dict[int, tuple[int, float]]:
    """The anchored pass: {face id: (person id, distance)} for the faces that are clearly one
    named person's (:func:`organizer.grouping.assign_to_anchors`'s rule, over the sparse
    nearest-face distances): within ``max_distance`` of that person's confirmed faces and at
    least ``margin`` (children: x :data:`CHILD_MARGIN_FACTOR`) nearer than to anyone else.
    ``floor[f]``: the distance below which no person missing from ``face_dists[f]`` can be.
    Faces are granted nearest first, through ``rules`` (one per photo, kept-apart)."""
    wanted = []
    for f, dists in face_dists.items():
        if not dists:
            continue
        best = min(dists, key=lambda p: (dists[p], p))
        d1 = dists[best]
        d2 = min([v for p, v in dists.items() if p != best] + [floor.get(f, FAR)])
        if d1 <= max_distance and d2 - d1 >= rules.margin([f], best, margin):
            wanted.append((d1, f, best))
    out: dict[int, tuple[int, float]] = {}
    for d, f, person in sorted(wanted):
        if rules.allows(f, person):
            rules.take(f, person)
            out[f] = (person, d)
    return out


@dataclass
class _Evidence:
    """Every live confirmed face (the anchors), with its photo's date."""

    ids: np.ndarray
    owner: np.ndarray
    quality: np.ndarray
    mat: np.ndarray
    taken: np.ndarray   # datetime64[D], NaT when the photo has no EXIF date


def _load_evidence(s: Session) -> _Evidence:
    ids, owners, quality, raw, taken = [], [], [], [], []
    for fid, pid, q, emb, when, source in s.execute(
            select(Face.id, Face.person_id, Face.quality, Face.embedding, Photo.taken_at, Photo.taken_at_source)
            .join(Photo, Photo.id == Face.photo_id)
            .where(live(), Face.person_id.is_not(None), Face.assignment == Assignment.confirmed).order_by(Face.id)):
        ids.append(fid)
        owners.append(pid)
        quality.append(q or 0.0)
        raw.append(emb)
        taken.append(when if source == "exif" else None)
    return _Evidence(np.asarray(ids, dtype=np.int64), np.asarray(owners, dtype=np.int64),
                     np.asarray(quality, dtype=np.float64), embedding_matrix(raw), _days(taken))


def _days(values: list[datetime | None]) -> np.ndarray:
    return np.array([np.datetime64(v.date(), "D") if v is not None else np.datetime64("NaT") for v in values],
                    dtype="datetime64[D]")


def person_scores(pool_ids: np.ndarray, pool_mat: np.ndarray, ev: _Evidence,
                  rejected: dict[int, set[int]]) -> tuple[dict[int, dict[int, float]], dict[int, float]]:
    """(face id -> {person: distance}, face id -> floor) as :mod:`organizer.suggestions`
    scores people: :func:`organizer.neighbours.person_scores` against the anchors."""
    return neighbours.person_scores(pool_ids, pool_mat, ev.ids, ev.owner, ev.mat, ev.quality, rejected)


def child_scores(pool_ids: np.ndarray, pool_mat: np.ndarray, pool_taken: np.ndarray, ev: _Evidence,
                 births: dict[int, date], rejected: dict[int, set[int]]) -> dict[tuple[int, int], float | None]:
    """{(face id, person id): distance} for each person with a birth date who was a child
    (under :data:`CHILD_AGE`) at the face's photo date (EXIF): the mean distance to the 3
    nearest of their confirmed faces from photos taken within :data:`CHILD_WINDOW_YEARS`
    of it, or None when they have no such face (then their whole-life distance stands).

    Children's faces change fast: a 2-year-old's face is compared with them at 0-5, not
    with them at 30. Cost: for each such person, (faces dated in their childhood) x (their
    confirmed faces), in row blocks."""
    out: dict[tuple[int, int], float | None] = {}
    window = np.timedelta64(round(CHILD_WINDOW_YEARS * 365.25), "D")
    for person, born in births.items():
        mine = np.flatnonzero(ev.owner == person)
        if len(mine) == 0:
            continue
        start = np.datetime64(born, "D")
        end = np.datetime64(date(born.year + CHILD_AGE, born.month, 28 if born.month == 2 and born.day == 29
                                 else born.day), "D")
        young = np.flatnonzero(~np.isnat(pool_taken) & (pool_taken >= start) & (pool_taken < end))
        if len(young) == 0:
            continue
        refs, ref_taken = ev.mat[mine], ev.taken[mine]
        step = max(32, BLOCK_ELEMENTS // max(len(refs), 1))
        for a in range(0, len(young), step):
            rows = young[a:a + step]
            d = pairwise_distances(pool_mat[rows], refs)
            near = np.abs(pool_taken[rows][:, None] - ref_taken[None, :]) <= window  # NaT compares False
            d = np.where(near, d, np.inf)
            kk = min(K_PER_PERSON, len(refs))
            best = np.partition(d, kk - 1, axis=1)[:, :kk] if kk < len(refs) else d
            for i, row in enumerate(rows.tolist()):
                fid = int(pool_ids[row])
                if person in rejected.get(fid, ()):
                    continue
                vals = best[i][np.isfinite(best[i])]
                out[(fid, person)] = float(vals.mean()) if len(vals) else None
    return out


@dataclass
class _Pool:
    ids: np.ndarray
    mat: np.ndarray
    photo: np.ndarray
    taken: np.ndarray     # datetime64[D] of the EXIF date, NaT when none
    any_taken: list[datetime | None]  # taken_at whatever its source (for the birth-date rule)


def _load_pool(s: Session, where: list[ColumnElement[bool]]) -> _Pool:
    ids, raw, photos, exif, taken = [], [], [], [], []
    for fid, emb, photo, when, source in s.execute(
            select(Face.id, Face.embedding, Face.photo_id, Photo.taken_at, Photo.taken_at_source)
            .join(Photo, Photo.id == Face.photo_id).where(*where).order_by(Face.id)):
        ids.append(fid)
        raw.append(emb)
        photos.append(photo)
        taken.append(when)
        exif.append(when if source == "exif" else None)
    return _Pool(np.asarray(ids, dtype=np.int64), embedding_matrix(raw), np.asarray(photos, dtype=np.int64),
                 _days(exif), taken)


def load_rules(s: Session, pool: _Pool, births: dict[int, date]) -> tuple[FaceRules, list[tuple[str, str]]]:
    """The run's :class:`FaceRules` for the pool, and the split records to store (module doc)."""
    owner_of = {fid: pid for fid, pid in s.execute(select(Face.id, Face.person_id).where(
        live(), Face.person_id.is_not(None), Face.assignment.in_(OWNING))) if pid is not None}
    new_records = new_split_records(s)
    records = load_split_records(s)
    for _key, value in new_records:
        data = json.loads(value)
        if data["split"] and data["rest"]:
            records.append((frozenset(data["split"]), frozenset(data["rest"])))
    rules = FaceRules(photo_of=dict(zip(pool.ids.tolist(), pool.photo.tolist(), strict=True)),
                      in_photo=people_in_photos(s), kept=KeptApart.build(records, owner_of))
    return rules, new_records


def apply_rules(scores: dict[int, dict[int, float]], children: dict[tuple[int, int], float | None],
                pool: _Pool, births: dict[int, date], rules: FaceRules) -> dict[int, dict[int, float]]:
    """The scores with every person a face cannot be left out: born after its photo was
    taken, already in its photo, or owning a face the user kept apart from it. A child's
    score is the one of their faces from around the photo's date, and marks the pair for
    the wider margin (also when the photo has no date but the person is a child today)."""
    today = utcnow().date()
    out: dict[int, dict[int, float]] = {}
    taken = dict(zip(pool.ids.tolist(), pool.any_taken, strict=True))
    for (fid, person), d in children.items():
        if d is not None:
            scores.setdefault(fid, {})[person] = d
    for fid, dists in scores.items():
        when = taken.get(fid)
        keep = {}
        for person, d in dists.items():
            born = births.get(person)
            if born_after(born, when) or not rules.allows(fid, person):
                continue
            age = age_at(born, when) if when is not None else age_at(born, datetime.combine(today, datetime.min.time()))
            if age is not None and age < CHILD_AGE:
                rules.child.add((fid, person))
            keep[person] = d
        if keep:
            out[fid] = keep
    return out


def _rule_for(eps: float | None, min_samples: int | None, settings: Settings) -> GroupingRule:
    """The grouping rule with the caller's eps / min_samples (the settings' default eps is
    the rule's own)."""
    base = GroupingRule()
    if eps is None:
        eps = settings.eps
    min_samples = settings.min_samples if min_samples is None else min_samples
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 2:
        raise InvalidRequest("eps must be a number between 0 and 2")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise InvalidRequest("min-samples must be 1 or more")
    return replace(base, eps=float(eps), min_samples=int(min_samples))


def group_pool(mat: np.ndarray, photo: np.ndarray, ids: np.ndarray, rule: GroupingRule,
               kept: KeptApart) -> np.ndarray:
    """Labels (-1 = ungrouped) of the rows: DBSCAN (streamed for big pools), then the compact
    rule and the same-photo rule (:func:`organizer.grouping.refine_groups`), then no group
    across a split the user made. Labels renumbered 0..k-1, no group of one face."""
    labels = dbscan_labels(mat, rule.eps, rule.min_samples)
    labels = refine_groups(mat, labels, photo, rule)
    if kept.records:
        labels = np.asarray(kept.separate(ids.tolist(), labels.tolist()), dtype=np.int64)
    sizes = np.bincount(labels[labels >= 0], minlength=1)
    labels = np.where((labels >= 0) & (sizes[np.maximum(labels, 0)] >= max(2, rule.min_samples)), labels, -1)
    return renumber(labels)


def cluster_faces(lib: Library, *, eps: float | None = None, min_samples: int | None = None,
                  settings: Settings | None = None,
                  progress: Callable[[str], None] | None = None) -> ClusterReport:
    """Cluster the unnamed faces and merge the result into the library (see module doc).

    The distance work runs outside any write transaction; the result is then applied in one
    transaction to the faces that are still unnamed (a face the user labelled meanwhile is
    left alone)."""
    settings = settings or Settings.from_env()
    rule = _rule_for(eps, min_samples, settings)
    say = progress or (lambda _msg: None)
    started = time.perf_counter()

    user_made = select(Cluster.id).where(Cluster.run_id.is_(None))
    in_pool = [live(), unowned(), or_(Face.cluster_id.is_(None), Face.cluster_id.not_in(user_made))]
    with lib.session() as s:
        say("loading faces")
        pool = _load_pool(s, in_pool)
        old_cluster = {fid: as_id(cid) for fid, cid in s.execute(
            select(Face.id, Face.cluster_id).where(*in_pool, Face.cluster_id.is_not(None)))}
        say("comparing with named people")
        births = birth_dates(s)
        rules, new_records = load_rules(s, pool, births)
        evidence = _load_evidence(s)
        rejected: dict[int, set[int]] = {}
        for fid, pid in s.execute(select(FaceRejection.face_id, FaceRejection.person_id)):
            rejected.setdefault(fid, set()).add(pid)
    scores, floor = person_scores(pool.ids, pool.mat, evidence, rejected)
    children = child_scores(pool.ids, pool.mat, pool.taken, evidence, births, rejected) if births else {}
    face_dists = apply_rules(scores, children, pool, births, rules)
    anchored = anchor_faces(face_dists, floor, rules)

    say(f"clustering {len(pool.ids)} faces")
    rest = np.flatnonzero([f not in anchored for f in pool.ids.tolist()]) if anchored else np.arange(len(pool.ids))
    labels = group_pool(pool.mat[rest], pool.photo[rest], pool.ids[rest], rule, rules.kept)
    groups_by_label: dict[int, list[int]] = {}
    noise: list[int] = []
    for fid, lab in zip(pool.ids[rest].tolist(), labels.tolist(), strict=True):
        (noise.append(fid) if lab < 0 else groups_by_label.setdefault(lab, []).append(fid))
    groups = [groups_by_label[k] for k in sorted(groups_by_label)]
    old_groups: dict[int, set[int]] = {}
    for fid, cid in old_cluster.items():
        old_groups.setdefault(cid, set()).add(fid)
    keep = match_clusters(groups, old_groups)
    decided = decide_people(groups + [[f] for f in noise], face_dists, rules)
    decisions, single = decided[:len(groups)], decided[len(groups):]

    say("saving")
    with lib.session() as s:
        for key, value in new_records:
            if s.get(LibraryMeta, key) is None:
                s.add(LibraryMeta(key=key, value=value))
        run = ClusterRun(eps=rule.eps, min_samples=rule.min_samples, faces=len(pool.ids),
                         clusters=len(groups), noise=len(noise))
        s.add(run)
        s.flush()
        current = {fid: FaceState(pid, a, cid) for fid, pid, a, cid in s.execute(
            select(Face.id, Face.person_id, Face.assignment, Face.cluster_id).where(*in_pool))}
        people = set(s.scalars(select(Person.id)))
        target: dict[int, FaceState] = {}
        cluster_ids: list[int] = []
        existing = set(s.scalars(select(Cluster.id).where(Cluster.id.in_(list(keep.values()))))) if keep else set()
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
        for f, (pid, d) in anchored.items():
            if pid in people:
                target[f] = FaceState(pid, Assignment.auto, None, confidence_for(d))
                auto_n += 1
            else:
                target[f] = FaceState(None, None, None)
        for decision in decisions + single:
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
        kept_n = sum(1 for n in range(len(groups)) if keep.get(n) == cluster_ids[n])
        run.clusters = len(groups)
        report = ClusterReport(
            run_id=run.id, eps=rule.eps, min_samples=rule.min_samples, faces=len(pool.ids),
            clusters=len(groups), noise=len(noise), kept=kept_n, created=len(groups) - kept_n,
            removed=len(stale), auto_assigned=auto_n, suggested=sugg_n,
            seconds=time.perf_counter() - started, anchored=sum(1 for p, _d in anchored.values() if p in people))
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
    pairs = Counter(zip(labels[clustered].tolist(), truth[clustered].tolist(), strict=True))
    same_both = sum(c * (c - 1) // 2 for c in pairs.values())
    same_cluster = sum(c * (c - 1) // 2 for c in Counter(labels[clustered].tolist()).values())
    same_truth = sum(c * (c - 1) // 2 for c in Counter(truth.tolist()).values())
    precision = same_both / same_cluster if same_cluster else 1.0
    recall = same_both / same_truth if same_truth else 1.0
    return precision, recall


__all__ = ["ClusterReport", "FaceRules", "cluster_faces", "cluster_after_scan", "dbscan_labels", "dbscan_streaming",
           "radius_graph", "match_clusters", "decide_people", "anchor_faces", "pairwise_precision_recall",
           "AUTO_ASSIGN_DISTANCE", "AUTO_ASSIGN_MARGIN", "ANCHOR_MAX_DISTANCE", "ANCHOR_MARGIN", "CHILD_AGE",
           "CHILD_WINDOW_YEARS", "CHILD_MARGIN_FACTOR"]
