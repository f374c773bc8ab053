"""How well each grouping method groups a scanned, identity-labelled library.

Reads a library made by ``organizer scan`` (opened read-only) and takes each photo's
identity from its folder name (``<set>/<person>/x.jpg``; in a photo with several faces the
biggest face carries the label, the others are clustered but not scored). Prints for each
method, all on the same embeddings in one process:

* pairwise precision / recall over the labelled faces, groups, faces left ungrouped;
* the worst group of 20+ faces (and of any size): size, identities, pairwise precision;
* the largest distance from a grouped face to its group's medoid;
* same-photo violations: photos with two faces in one group;
* the anchored second pass: the user names the largest group of each identity (confirming
  that identity's faces in it, or only a fraction of identities), then
  :func:`organizer.grouping.anchored_groups` assigns and regroups the rest;
* threshold sweeps (eps, max radius, anchor margin and distance) as small tables.

    python bench/grouping.py --db /work/cache/lfw-dev.db --set-name lfw-dev
    python bench/grouping.py --db /work/cache/people-small.db --set-name people-small --ignore-folder test
    python bench/grouping.py --db /work/cache/group-photos.db --set-name group-photos --no-truth
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sklearn.cluster import HDBSCAN, AgglomerativeClustering  # noqa: E402

from organizer.grouping import (  # noqa: E402
    GroupingRule,
    anchored_groups,
    chinese_whispers,
    compact_groups,
    dbscan,
    enforce_cannot_link,
    groups_of,
    medoid_radius,
    refine_groups,
    renumber,
)
from organizer.models import embedding_matrix  # noqa: E402

BIG = 20


@dataclass
class Library:
    emb: np.ndarray
    photo: np.ndarray
    #: identity index per face, -1 = not labelled (a bystander or an unlabelled folder)
    truth: np.ndarray
    names: list[str]


def load(db: str, ignore: set[str], with_truth: bool = True) -> Library:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute("select f.id, f.photo_id, f.embedding, f.top, f.right, f.bottom, f.left, p.path "
                       "from faces f join photos p on p.id = f.photo_id where f.is_face = 1 order by f.id").fetchall()
    con.close()
    emb = embedding_matrix([r[2] for r in rows]).astype(np.float32)
    photo = np.asarray([r[1] for r in rows], dtype=np.int64)
    main: dict[int, tuple[int, int]] = {}  # photo -> (area, row) of its biggest face
    for i, (_fid, pid, _e, top, right, bottom, left, _path) in enumerate(rows):
        area = (bottom - top) * (right - left)
        if pid not in main or area > main[pid][0]:
            main[pid] = (area, i)
    names: dict[str, int] = {}
    truth = np.full(len(rows), -1, dtype=np.int64)
    if with_truth:
        for _area, i in main.values():
            parts = rows[i][7].split("/")
            if len(parts) >= 2 and parts[-2] not in ignore:
                truth[i] = names.setdefault(parts[-2], len(names))
    return Library(emb, photo, truth, list(names))


def pairs(counts: Counter) -> int:
    return sum(c * (c - 1) // 2 for c in counts.values())


def precision_recall(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    known = truth >= 0
    lab, tru = labels[known], truth[known]
    grouped = lab >= 0
    same_both = pairs(Counter(zip(lab[grouped].tolist(), tru[grouped].tolist(), strict=False)))
    same_group = pairs(Counter(lab[grouped].tolist()))
    same_truth = pairs(Counter(tru.tolist()))
    return (same_both / same_group if same_group else 1.0, same_both / same_truth if same_truth else 1.0)


def group_precision(members: np.ndarray, truth: np.ndarray) -> tuple[int, float]:
    """(identities, pairwise precision) of one group over its labelled faces."""
    t = truth[members]
    t = t[t >= 0]
    all_pairs = len(t) * (len(t) - 1) // 2
    return len(set(t.tolist())), (pairs(Counter(t.tolist())) / all_pairs if all_pairs else 1.0)


def violations(labels: np.ndarray, photo: np.ndarray) -> int:
    """Photos with two faces in one group."""
    grouped = labels >= 0
    seen = Counter(zip(photo[grouped].tolist(), labels[grouped].tolist(), strict=False))
    return len({p for (p, _g), c in seen.items() if c > 1})


@dataclass
class Figures:
    precision: float
    recall: float
    #: recall without the identity with the most faces (its pairs dominate the recall)
    recall_rest: float
    groups: int
    ungrouped: int
    worst_big: str
    worst_any: str
    max_radius: float
    same_photo: int
    seconds: float


def measure(lib: Library, labels: np.ndarray, seconds: float) -> Figures:
    p, r = precision_recall(labels, lib.truth)
    known = lib.truth[lib.truth >= 0]
    biggest = np.bincount(known).argmax() if len(known) else -1
    rest = lib.truth != biggest
    _p, r_rest = precision_recall(labels[rest], lib.truth[rest])
    worst_big = worst_any = None
    max_r = 0.0
    members_all = groups_of(labels)
    for members in members_all:
        max_r = max(max_r, medoid_radius(lib.emb[members]))
        ids, prec = group_precision(members, lib.truth)
        row = (prec, -len(members), ids)
        if worst_any is None or row < worst_any:
            worst_any = row
        if len(members) >= BIG and (worst_big is None or row < worst_big):
            worst_big = row

    def fmt(w: tuple[float, int, int] | None) -> str:
        return "-" if w is None else f"{-w[1]}f/{w[2]}id/{w[0]:.2f}"

    return Figures(p, r, r_rest, len(members_all), int((labels < 0).sum()), fmt(worst_big), fmt(worst_any), max_r,
                   violations(labels, lib.photo), seconds)


HEADER = (f"{'method':<44} {'prec':>6} {'recall':>6} {'rec-1':>6} {'groups':>6} {'ungrp':>6} {'worst 20+':>14} "
          f"{'worst any':>14} {'maxR':>5} {'2-in-1':>6} {'sec':>5}")


def row(name: str, f: Figures) -> str:
    return (f"{name:<44} {f.precision:6.3f} {f.recall:6.3f} {f.recall_rest:6.3f} {f.groups:6d} {f.ungrouped:6d} "
            f"{f.worst_big:>14} "
            f"{f.worst_any:>14} {f.max_radius:5.2f} {f.same_photo:6d} {f.seconds:5.1f}")


# ---------------------------------------------------------------- candidate methods

def dense(emb: np.ndarray) -> np.ndarray:
    from organizer.grouping import pairwise_distances

    d = pairwise_distances(emb, emb)
    np.fill_diagonal(d, 0.0)
    return d.astype(np.float64)


def two_eps(emb: np.ndarray, tight: float, loose: float) -> np.ndarray:
    """DBSCAN at ``tight``; an ungrouped face then joins the group of its nearest grouped
    face when that face is within ``loose``."""
    labels = dbscan(emb, tight)
    grouped = np.flatnonzero(labels >= 0)
    noise = np.flatnonzero(labels < 0)
    if len(grouped) and len(noise):
        from organizer.grouping import pairwise_distances

        d = pairwise_distances(emb[noise], emb[grouped])
        near = d.argmin(axis=1)
        ok = d[np.arange(len(noise)), near] <= loose
        labels[noise[ok]] = labels[grouped[near[ok]]]
    return renumber(labels)


def agglomerative(d: np.ndarray, linkage: str, threshold: float) -> np.ndarray:
    labels = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage=linkage,
                                     distance_threshold=threshold).fit(d).labels_
    sizes = Counter(labels.tolist())
    return renumber(np.where([sizes[lab] > 1 for lab in labels.tolist()], labels, -1))


def hdbscan(d: np.ndarray, min_size: int, epsilon: float) -> np.ndarray:
    return renumber(HDBSCAN(min_cluster_size=min_size, min_samples=1, metric="precomputed", copy=True,
                            cluster_selection_epsilon=epsilon).fit(d).labels_)


def sweep_rule(lib: Library, title: str, rules: list[tuple[str, GroupingRule]]) -> None:
    """A table: the compact rule under each of ``rules`` (name, rule), timed one by one."""
    print(f"\nsweep: {title}")
    print(HEADER)
    for name, r_ in rules:
        t = time.perf_counter()
        labels = compact_groups(lib.emb, lib.photo, r_)
        print(row(name, measure(lib, labels, time.perf_counter() - t)), flush=True)


def methods(lib: Library, rule: GroupingRule) -> list[tuple[str, Callable[[], np.ndarray]]]:
    emb, photo = lib.emb, lib.photo
    d_holder: list[np.ndarray] = []

    def d() -> np.ndarray:
        if not d_holder:
            d_holder.append(dense(emb))
        return d_holder[0]

    def cl(labels: np.ndarray) -> np.ndarray:
        return enforce_cannot_link(emb, labels, photo)

    return [
        ("dbscan 0.40 (baseline)", lambda: dbscan(emb, 0.40)),
        ("dbscan 0.45", lambda: dbscan(emb, 0.45)),
        ("dbscan 0.40 + cannot-link", lambda: cl(dbscan(emb, 0.40))),
        ("dbscan 0.40 + radius 0.62 split + CL",
         lambda: compact_groups(emb, photo, replace(rule, eps=0.40, split_min_piece=0))),
        ("dbscan 0.42 + radius 0.62 split + CL",
         lambda: compact_groups(emb, photo, replace(rule, split_min_piece=0))),
        (f"compact eps{rule.eps:.2f} R{rule.max_radius:.2f} piece{rule.split_min_piece} + CL (chosen)",
         lambda: compact_groups(emb, photo, rule)),
        ("whispers 0.45 + radius/piece + CL",
         lambda: compact_groups(emb, photo, replace(rule, connect="whispers", eps=0.45))),
        ("two-eps 0.35 -> attach 0.45", lambda: two_eps(emb, 0.35, 0.45)),
        ("two-eps 0.35 -> attach 0.45 + CL", lambda: cl(two_eps(emb, 0.35, 0.45))),
        ("chinese whispers k20 cut 0.40", lambda: chinese_whispers(emb, 0.40)),
        ("chinese whispers k20 cut 0.45", lambda: chinese_whispers(emb, 0.45)),
        ("chinese whispers k20 cut 0.50", lambda: chinese_whispers(emb, 0.50)),
        ("agglomerative average 0.45", lambda: agglomerative(d(), "average", 0.45)),
        ("agglomerative average 0.50", lambda: agglomerative(d(), "average", 0.50)),
        ("agglomerative average 0.55", lambda: agglomerative(d(), "average", 0.55)),
        ("agglomerative complete 0.55", lambda: agglomerative(d(), "complete", 0.55)),
        ("agglomerative complete 0.65", lambda: agglomerative(d(), "complete", 0.65)),
        ("agglomerative average 0.50 + CL", lambda: cl(agglomerative(d(), "average", 0.50))),
        ("hdbscan min2 eps0.30", lambda: hdbscan(d(), 2, 0.30)),
        ("hdbscan min2 eps0.25", lambda: hdbscan(d(), 2, 0.25)),
        ("hdbscan min2 eps0.30 + radius/CL", lambda: refine_groups(emb, hdbscan(d(), 2, 0.30), photo, rule)),
    ]


# ---------------------------------------------------------------- anchored second pass

def name_largest_groups(lib: Library, labels: np.ndarray, fraction: float) -> tuple[np.ndarray, dict[int, set[int]]]:
    """The user names groups, largest first, each after its majority identity, until
    ``fraction`` of the identities that have a group are named (each identity once: its
    largest group). The majority identity's faces become anchors (confirmed); the group's
    other faces are removed, which records "not this person" for them."""
    anchors = np.full(len(labels), -1, dtype=np.int64)
    rejected: dict[int, set[int]] = {}
    best: dict[int, tuple[int, np.ndarray]] = {}  # identity -> (its faces in the group, group)
    for members in groups_of(labels):
        t = lib.truth[members]
        t = t[t >= 0]
        if len(t) == 0:
            continue
        ident, count = Counter(t.tolist()).most_common(1)[0]
        if ident not in best or count > best[ident][0]:
            best[ident] = (count, members)
    chosen = sorted(best.items(), key=lambda kv: -kv[1][0])
    chosen = chosen[: round(len(chosen) * fraction)]
    for ident, (_count, members) in chosen:
        for f in members.tolist():
            if lib.truth[f] == ident:
                anchors[f] = ident
            else:
                rejected.setdefault(f, set()).add(ident)
    return anchors, rejected


def anchored_figures(lib: Library, labels: np.ndarray, fraction: float, max_distance: float, margin: float,
                     rule: GroupingRule) -> tuple[float, float, int, float, int, int]:
    """(precision, recall, faces assigned, their precision, same-photo violations, anchors)
    of persons + regrouped rest after the second pass."""
    anchors, rejected = name_largest_groups(lib, labels, fraction)
    person, rest = anchored_groups(lib.emb, lib.photo, anchors, max_distance=max_distance, margin=margin,
                                   rule=rule, rejected=rejected)
    assigned = (anchors < 0) & (person >= 0)
    known = assigned & (lib.truth >= 0)
    right = float((lib.truth[known] == person[known]).mean()) if known.any() else 1.0
    top = int(person.max()) + 1 if (person >= 0).any() else 0
    final = np.where(person >= 0, person, np.where(rest >= 0, rest + top, -1))
    p, r = precision_recall(final, lib.truth)
    return p, r, int(assigned.sum()), right, violations(final, lib.photo), int((anchors >= 0).sum())


# ---------------------------------------------------------------- report

def product_labels(db: str) -> tuple[np.ndarray, float]:
    """What the product does: :func:`organizer.clustering.cluster_faces` with the default
    settings on a temporary copy of the library; labels in :func:`load`'s row order."""
    import tempfile

    from organizer.clustering import cluster_faces
    from organizer.config import Settings
    from organizer.db import Library as OrganizerLibrary

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
        settings = Settings(db_url=f"sqlite:///{copy}")
        org = OrganizerLibrary.open(settings.db_url)
        t = time.perf_counter()
        cluster_faces(org, settings=settings)
        seconds = time.perf_counter() - t
        org.close()
        con = sqlite3.connect(copy)
        rows = con.execute("select cluster_id from faces where is_face = 1 order by id").fetchall()
        con.close()
    return np.asarray([-1 if c is None else c for (c,) in rows], dtype=np.int64), seconds


def identity_radii(lib: Library) -> str:
    """How far a person's own faces lie from their medoid (identities with 3+ faces)."""
    radii = []
    for ident in range(len(lib.names)):
        members = np.flatnonzero(lib.truth == ident)
        if len(members) >= 3:
            from organizer.grouping import medoid_distances

            radii.extend(medoid_distances(lib.emb[members])[1].tolist())
    if not radii:
        return "no identity with 3+ faces"
    a = np.asarray(radii)
    qs = [50, 90, 95, 99, 100]
    return (f"{len(a)} faces of identities with 3+ faces, distance to own medoid: "
            + ", ".join(f"p{q} {np.percentile(a, q):.3f}" for q in qs)
            + "; share within " + ", ".join(f"{t:.2f}: {(a <= t).mean():.3f}" for t in (0.38, 0.42, 0.46, 0.50)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="a library scanned by `organizer scan` (opened read-only)")
    ap.add_argument("--set-name", default="", help="name printed with the figures")
    ap.add_argument("--ignore-folder", action="append", default=[],
                    help="folder names that are not identities (e.g. test); repeatable")
    ap.add_argument("--no-truth", action="store_true", help="no identities: print only grouping and same-photo figures")
    ap.add_argument("--fractions", default="1.0,0.5", help="fractions of identities the simulated user names")
    ap.add_argument("--no-sweeps", action="store_true")
    ap.add_argument("--quick", action="store_true", help="baseline and chosen rule only")
    ap.add_argument("--product", action="store_true",
                    help="also run organizer.clustering.cluster_faces (default settings) on a copy of --db")
    args = ap.parse_args(argv)

    lib = load(args.db, set(args.ignore_folder), not args.no_truth)
    rule = GroupingRule()
    labelled = int((lib.truth >= 0).sum())
    print(f"{args.set_name or args.db}: {len(lib.emb)} faces in {len(set(lib.photo.tolist()))} photos, "
          f"{labelled} labelled, {len(lib.names)} identities; rule {rule}")
    if labelled:
        print(identity_radii(lib))
    print()
    print(HEADER)
    results = {}
    for name, fn in methods(lib, rule):
        if args.quick and not ("baseline" in name or "chosen" in name):
            continue
        t = time.perf_counter()
        labels = fn()
        results[name] = labels
        print(row(name, measure(lib, labels, time.perf_counter() - t)), flush=True)
    if args.product:
        labels, seconds = product_labels(args.db)
        print(row("product: cluster_faces (defaults)", measure(lib, renumber(labels), seconds)), flush=True)

    if args.no_sweeps:
        return 0
    sweep_rule(lib, "eps of the compact rule (R fixed)",
               [(f"eps {eps:.2f} R {rule.max_radius:.2f}", replace(rule, eps=eps))
                for eps in (0.38, 0.40, 0.41, 0.42, 0.43, 0.44, 0.46)])
    sweep_rule(lib, "max radius of the compact rule (eps fixed)",
               [(f"eps {rule.eps:.2f} R {radius:.2f}", replace(rule, max_radius=radius))
                for radius in (0.50, 0.55, 0.58, 0.60, 0.62, 0.64, 0.66, 0.70)])
    sweep_rule(lib, "smallest piece that splits a compact group (eps, R fixed)",
               [(f"eps {rule.eps:.2f} R {rule.max_radius:.2f} piece {piece}", replace(rule, split_min_piece=piece))
                for piece in (0, 2, 3, 5, 8, 12, 20)])
    if not labelled:
        return 0
    chosen = next(v for k, v in results.items() if "chosen" in k)
    print("\nanchored second pass (user names the largest group of a fraction of identities; "
          "then assign_to_anchors + compact_groups on the rest)")
    print(f"{'fraction':>8} {'maxd':>5} {'margin':>6} {'anchors':>7} {'assigned':>8} {'assign-prec':>11} "
          f"{'prec':>6} {'recall':>6} {'2-in-1':>6}")
    grid = [(f, 0.45, 0.10) for f in map(float, args.fractions.split(","))]
    grid += [(1.0, md, mg) for md in (0.35, 0.40, 0.45, 0.50) for mg in (0.0, 0.05, 0.10, 0.15, 0.20)
             if (md, mg) != (0.45, 0.10)]
    for fraction, md, mg in grid:
        p, r, n_assigned, right, viol, n_anchor = anchored_figures(lib, chosen, fraction, md, mg, rule)
        print(f"{fraction:8.2f} {md:5.2f} {mg:6.2f} {n_anchor:7d} {n_assigned:8d} {right:11.3f} "
              f"{p:6.3f} {r:6.3f} {viol:6d}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
