"""organizer.grouping: compact groups, cannot-link and the anchored second pass.

Fast tests on synthetic embeddings scaled like dlib's (faces of one person a few tenths
apart, people ~1 apart); one slow test scans real photos."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from organizer.grouping import (
    GroupingRule,
    anchored_groups,
    assign_to_anchors,
    chinese_whispers,
    compact_groups,
    dbscan,
    enforce_cannot_link,
    groups_of,
    medoid_radius,
    refine_groups,
)
from organizer.models import Face, embedding_matrix
from organizer.testing import truth_by_folder

from .conftest import lfw_subset, photos_dir, scan_into

DIM = 128


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def blob(rng: np.random.Generator, centre: np.ndarray, n: int, sd: float) -> np.ndarray:
    return (centre + rng.normal(0.0, sd, (n, DIM))).astype(np.float32)


def distinct_photos(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int64)


def test_a_chain_between_two_people_is_split_by_the_radius_rule() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0, 0.06, DIM).astype(np.float32)
    u = unit(rng)
    b = a + 1.4 * u
    chain = np.stack([a + t * u for t in np.arange(0.28, 1.4, 0.28)]).astype(np.float32)
    emb = np.concatenate([blob(rng, a, 8, 0.01), blob(rng, b, 8, 0.01), chain])
    who = np.array([0] * 8 + [1] * 8 + [2] * len(chain))
    photos = distinct_photos(len(emb))
    rule = GroupingRule()
    plain = dbscan(emb, rule.eps)
    assert len(set(plain[who < 2].tolist())) == 1, "the test needs DBSCAN to chain both people into one group"

    labels = compact_groups(emb, photos, rule)
    for members in groups_of(labels):
        assert medoid_radius(emb[members]) <= rule.max_radius
        assert len(set(who[members].tolist()) - {2}) <= 1, "a group holds faces of both people"
    # each person still forms a group of their own
    assert len(set(labels[who == 0].tolist())) == 1 and labels[0] >= 0
    assert len(set(labels[who == 1].tolist())) == 1 and labels[8] >= 0


def test_two_compact_people_joined_by_one_bridge_face_are_split() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0, 0.06, DIM).astype(np.float32)
    u = unit(rng)
    b = a + 0.80 * u  # the bridge face is ~0.40 from both: joined at eps 0.42, not at 0.39
    emb = np.concatenate([blob(rng, a, 6, 0.005), blob(rng, b, 6, 0.005), (a + 0.40 * u)[None, :]])
    photos = distinct_photos(len(emb))
    radius_only = compact_groups(emb, photos, GroupingRule(split_min_piece=0))
    assert len(set(radius_only[:12].tolist())) == 1, "the test needs a group that the radius rule alone keeps"

    labels = compact_groups(emb, photos, GroupingRule())
    assert len(set(labels[:6].tolist())) == 1 and len(set(labels[6:12].tolist())) == 1
    assert labels[0] != labels[6] and labels[0] >= 0 and labels[6] >= 0


def test_two_faces_of_one_photo_never_share_a_group() -> None:
    rng = np.random.default_rng(3)
    centre = rng.normal(0, 0.06, DIM).astype(np.float32)
    emb = blob(rng, centre, 10, 0.01)
    photos = distinct_photos(10)
    photos[9] = photos[0]  # face 9 is in the same photo as face 0
    emb[9] = emb[0] + 0.001  # and looks exactly like it
    emb[0] = centre  # face 0 is the most central one: it stays
    assert len(set(dbscan(emb, 0.42).tolist())) == 1
    labels = compact_groups(emb, photos, GroupingRule())
    assert labels[0] >= 0 and labels[9] == -1
    assert len(set(labels[:9].tolist())) == 1


def test_cannot_link_dissolves_a_group_left_with_one_face() -> None:
    emb = np.zeros((2, DIM), dtype=np.float32)
    emb[1, 0] = 0.1
    labels = enforce_cannot_link(emb, np.array([0, 0]), np.array([5, 5]))
    assert labels.tolist() == [-1, -1]


@pytest.mark.parametrize("seed", range(6))
def test_random_libraries_keep_every_rule(seed: int) -> None:
    """Random people, photos of 1-4 faces: no group with two faces of a photo, none wider
    than the radius, whatever connected them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.05, (30, DIM)).astype(np.float32)
    who = rng.integers(0, 30, 400)
    emb = (centres[who] + rng.normal(0, 0.025, (400, DIM))).astype(np.float32)
    photos = np.repeat(np.arange(400), rng.choice([1, 1, 2, 3, 4], 400))[:400]
    rule = GroupingRule()
    for labels in (compact_groups(emb, photos, rule),
                   refine_groups(emb, chinese_whispers(emb, 0.5), photos, rule)):
        for members in groups_of(labels):
            assert len(members) >= 2
            assert medoid_radius(emb[members]) <= rule.max_radius + 1e-6
            assert len(set(photos[members].tolist())) == len(members)


def test_chinese_whispers_separates_two_dense_people_joined_by_a_thin_chain() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(0, 0.06, DIM).astype(np.float32)
    u = unit(rng)
    emb = np.concatenate([blob(rng, a, 12, 0.01), blob(rng, a + 0.9 * u, 12, 0.01),
                          np.stack([a + t * u for t in (0.3, 0.6)]).astype(np.float32)])
    assert len(set(dbscan(emb, 0.42)[:24].tolist())) == 1
    labels = chinese_whispers(emb, 0.42)
    assert labels[0] != labels[12]
    assert len(set(labels[:12].tolist())) == 1 and len(set(labels[12:24].tolist())) == 1


def anchors_fixture(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two people 0.6 apart along ``u``, 4 confirmed faces each; returns (ref_emb,
    ref_person, ref_photo, u) with person ids 7 and 9."""
    u = unit(rng)
    p7 = np.zeros(DIM, dtype=np.float32)
    p9 = 0.6 * u
    ref = np.concatenate([blob(rng, p7, 4, 0.004), blob(rng, p9, 4, 0.004)])
    return ref, np.array([7] * 4 + [9] * 4), np.arange(100, 108), u


def test_a_face_is_assigned_only_when_clearly_closer_to_one_person() -> None:
    rng = np.random.default_rng(5)
    ref, ref_person, ref_photo, u = anchors_fixture(rng)
    faces = np.stack([0.1 * u,      # 0.1 from 7, 0.5 from 9: clearly 7
                      0.3 * u,      # halfway: no margin
                      0.55 * u,     # 0.05 from 9, 0.55 from 7: clearly 9
                      -0.45 * u,    # 0.45 from 7: too far from anyone
                      0.25 * u]).astype(np.float32)  # 0.25 vs 0.35: margin 0.10 < 0.15
    got = assign_to_anchors(faces, np.arange(5), ref, ref_person, ref_photo, max_distance=0.40, margin=0.15)
    assert got.tolist() == [7, -1, 9, -1, -1]
    loose = assign_to_anchors(faces, np.arange(5), ref, ref_person, ref_photo, max_distance=0.40, margin=0.05)
    assert loose.tolist() == [7, -1, 9, -1, 7]


def test_a_person_already_in_the_photo_is_never_assigned_another_face_of_it() -> None:
    rng = np.random.default_rng(6)
    ref, ref_person, ref_photo, u = anchors_fixture(rng)
    faces = np.stack([0.05 * u, 0.08 * u, 0.02 * u]).astype(np.float32)
    # face 0 is in the photo of 7's first confirmed face; faces 1 and 2 share one photo
    photos = np.array([ref_photo[0], 500, 500])
    got = assign_to_anchors(faces, photos, ref, ref_person, ref_photo, max_distance=0.40, margin=0.10)
    assert got[0] == -1, "7 already has a face in that photo"
    assert got.tolist()[1:] == [-1, 7], "of two faces of one photo only the nearer gets 7"


def test_a_rejected_person_is_never_assigned() -> None:
    rng = np.random.default_rng(7)
    ref, ref_person, ref_photo, u = anchors_fixture(rng)
    faces = np.stack([0.05 * u, 0.05 * u]).astype(np.float32)
    got = assign_to_anchors(faces, np.array([1, 2]), ref, ref_person, ref_photo, rejected={1: {7}})
    assert got.tolist() == [7, -1]


def test_anchored_groups_assigns_then_groups_the_rest() -> None:
    rng = np.random.default_rng(8)
    ref, ref_person, _ref_photo, _u = anchors_fixture(rng)
    stranger = rng.normal(0, 0.06, DIM).astype(np.float32) + 1.0 * unit(rng)
    emb = np.concatenate([ref, blob(rng, np.zeros(DIM, np.float32), 3, 0.004), blob(rng, stranger, 5, 0.01)])
    anchors = np.concatenate([ref_person, np.full(8, -1)])
    photos = np.arange(len(emb))
    photos[8] = photos[0]  # one of 7's new faces is in a photo 7 is already in
    person, labels = anchored_groups(emb, photos, anchors)
    assert person[:8].tolist() == ref_person.tolist()
    assert person[8:11].tolist() == [-1, 7, 7]
    assert (person[11:] == -1).all()
    assert len(set(labels[11:].tolist())) == 1 and labels[11] >= 0
    assert (labels[:11] == -1).all()


@pytest.mark.slow
def test_real_faces_give_pure_compact_groups(tmp_path: Path) -> None:
    """8 lfw-dev identities x 6 photos plus people-small (two- and three-person photos)."""
    folder = lfw_subset(tmp_path / "photos" / "lfw", identities=8, per_identity=6)
    small = photos_dir("people-small")
    import shutil

    shutil.copytree(small, tmp_path / "photos" / "people-small")
    lib = scan_into(tmp_path / "lib.db", folder.parent, workers=1)
    truth = truth_by_folder(lib)
    with lib.session() as s:
        rows = s.execute(select(Face.id, Face.photo_id, Face.embedding).order_by(Face.id)).all()
    lib.close()
    emb = embedding_matrix([r[2] for r in rows])
    photos = np.array([r[1] for r in rows])
    rule = GroupingRule()
    # identities: lfw folders and people-small/train folders (test/ photos are not labelled)
    ident = np.array([truth.get(r[0]) if truth.get(r[0]) != "test" else None for r in rows], dtype=object)
    labels = compact_groups(emb, photos, rule)
    for members in groups_of(labels):
        assert medoid_radius(emb[members]) <= rule.max_radius
        assert len(set(photos[members].tolist())) == len(members)
    precision, recall = pair_scores(labels, ident)
    _p, baseline_recall = pair_scores(dbscan(emb, 0.40), ident)
    assert precision >= 0.98
    assert recall >= baseline_recall, "the compact rule groups fewer same-person pairs than plain DBSCAN 0.40"


def pair_scores(labels: np.ndarray, ident: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall over the faces with an identity."""
    same = grouped = 0
    for members in groups_of(labels):
        names = [n for n in ident[members] if n is not None]
        grouped += len(names) * (len(names) - 1) // 2
        same += sum(c * (c - 1) // 2 for c in Counter(names).values())
    together = sum(c * (c - 1) // 2 for c in Counter(n for n in ident if n is not None).values())
    return (same / grouped if grouped else 1.0), (same / together if together else 1.0)


@pytest.mark.parametrize("min_samples", [1, 2, 3])
def test_dbscan_is_scikit_learns_dbscan(min_samples: int) -> None:
    from sklearn.cluster import DBSCAN

    from organizer.grouping import radius_graph, renumber

    rng = np.random.default_rng(min_samples)
    centres = rng.normal(0, 0.5 / np.sqrt(DIM), (30, DIM))
    x = (centres[rng.integers(0, 30, 600)] + rng.normal(0, 0.22 / np.sqrt(DIM), (600, DIM))).astype(np.float32)
    x = np.concatenate([x, 5 + x[:3]])  # a few faces far from everyone: noise unless min_samples is 1
    theirs = DBSCAN(eps=0.4, min_samples=min_samples, metric="precomputed").fit(radius_graph(x, 0.4)).labels_
    ours = dbscan(x, 0.4, min_samples)
    assert ours.max() > 5
    assert np.array_equal(ours, renumber(theirs))
