"""Clustering real faces, and re-clustering that never undoes the user's work."""
from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn.cluster import DBSCAN
from sqlalchemy import select

from organizer import labelling
from organizer.browse import list_clusters, list_people
from organizer.clustering import cluster_faces, dbscan_labels, match_clusters, pairwise_precision_recall, radius_graph
from organizer.constraints import load_split_records
from organizer.db import Library
from organizer.errors import InvalidRequest
from organizer.models import Assignment, Cluster, Face, FaceRejection, Person, embedding_matrix
from organizer.scanner import scan

from .conftest import copy_db, db_url, lfw_subset, settings_for
from .test_labelling import faces_of_cluster, name_by_majority, truth


def clustering_quality(lib: Library) -> tuple[float, float]:
    t = truth(lib)
    with lib.session() as s:
        cid = dict(s.execute(select(Face.id, Face.cluster_id)).all())
    ids = sorted(t)
    labels = np.asarray([cid[f] if cid[f] is not None else -1 for f in ids])
    _, names = np.unique([t[f] for f in ids], return_inverse=True)
    return pairwise_precision_recall(labels, names)


def test_clustering_groups_one_person_and_separates_people(lfw_lib: Library) -> None:
    report = cluster_faces(lfw_lib)
    assert report.clusters >= 8 and report.faces >= 70
    precision, recall = clustering_quality(lfw_lib)
    # 6 photos per person: many same-person pairs are further apart than eps (recall is
    # much higher on big identities: lfw-dev overall P 0.99 R 0.93, see README)
    assert precision >= 0.95 and recall >= 0.3, (precision, recall)
    # a much too large eps chains different people together in plain DBSCAN (the measurement
    # can tell); the compact rule (no face further than max_radius from its group's medoid,
    # bridges split) keeps the groups pure even then
    t = truth(lfw_lib)
    ids = sorted(t)
    with lfw_lib.session() as s:
        raw = dict(s.execute(select(Face.id, Face.embedding).where(Face.id.in_(ids))).all())
    _, names = np.unique([t[f] for f in ids], return_inverse=True)
    plain = dbscan_labels(embedding_matrix([raw[f] for f in ids]), 0.7, 2)
    assert pairwise_precision_recall(plain, names)[0] < precision
    cluster_faces(lfw_lib, eps=0.7)
    assert clustering_quality(lfw_lib)[0] >= 0.95


def test_radius_graph_and_dbscan_match_the_dense_computation() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 0.5 / np.sqrt(128), (20, 128))
    x = (centres[rng.integers(0, 20, 400)] + rng.normal(0, 0.2 / np.sqrt(128), (400, 128))).astype(np.float32)
    g = radius_graph(x, 0.4).toarray()
    d = cdist(x, x)
    expect = (d <= 0.4) & ~np.eye(len(x), dtype=bool)
    assert np.array_equal(g > 0, expect)
    assert np.allclose(g[expect], d[expect], atol=1e-4)
    ours = dbscan_labels(x, 0.4, 2)
    theirs = DBSCAN(eps=0.4, min_samples=2).fit(x).labels_
    assert pairwise_precision_recall(ours, theirs) == (1.0, 1.0)
    assert np.array_equal(ours < 0, theirs < 0)


def test_cluster_ids_are_stable_when_nothing_changed(lfw_lib: Library) -> None:
    first = cluster_faces(lfw_lib)
    before = {c.id: faces_of_cluster(lfw_lib, c.id) for c in list_clusters(lfw_lib, limit=1000)}
    second = cluster_faces(lfw_lib)
    after = {c.id: faces_of_cluster(lfw_lib, c.id) for c in list_clusters(lfw_lib, limit=1000)}
    assert after == before
    assert second.kept == second.clusters == first.clusters and second.created == 0


def test_match_clusters_keeps_ids_of_barely_changed_groups() -> None:
    old = {10: {1, 2, 3, 4}, 11: {5, 6}, 12: {7, 8, 9}}
    new = [[1, 2, 3, 4, 20], [5, 21, 22, 23], [7, 8, 9]]
    assert match_clusters(new, old) == {0: 10, 2: 12}


def test_bad_parameters_are_refused(lfw_lib: Library) -> None:
    for kw in ({"eps": 0}, {"eps": -1.0}, {"min_samples": 0}, {"eps": "x"}):
        with pytest.raises(InvalidRequest):
            cluster_faces(lfw_lib, **kw)  # type: ignore[arg-type]


def test_a_split_group_survives_reclustering(lfw_lib: Library) -> None:
    cluster_faces(lfw_lib)
    big = list_clusters(lfw_lib)[0]
    part = faces_of_cluster(lfw_lib, big.id)[:2]
    new_id = labelling.split_faces(lfw_lib, part)
    cluster_faces(lfw_lib)
    assert faces_of_cluster(lfw_lib, new_id) == sorted(part)


def _decisions(lib: Library) -> dict:
    with lib.session() as s:
        return {
            "confirmed": sorted(s.execute(select(Face.id, Face.person_id).where(Face.assignment == Assignment.confirmed)).all()),
            "not_faces": sorted(s.scalars(select(Face.id).where(Face.is_face.is_(False)))),
            "rejections": sorted(s.execute(select(FaceRejection.face_id, FaceRejection.person_id)).all()),
            "people": sorted(s.execute(select(Person.id, Person.name, Person.hidden, Person.birth_date)).all()),
            "auto": sorted(s.execute(select(Face.id, Face.person_id).where(Face.assignment == Assignment.auto)).all()),
        }


def test_reclustering_after_new_photos_keeps_every_decision(tmp_path: Path) -> None:
    # the library first sees 4 photos of each of 8 people, then 3 more each
    full = lfw_subset(tmp_path / "all", identities=8, per_identity=7, min_photos=7)
    root = tmp_path / "photos"
    for person in sorted(full.iterdir()):
        (root / person.name).mkdir(parents=True)
        for f in sorted(person.iterdir())[:4]:
            shutil.copy2(f, root / person.name / f.name)
    settings = settings_for(tmp_path / "lib.db", workers=2)
    lib = Library.open(settings.db_url)
    scan(lib, root, settings)
    cluster_faces(lib)
    name_by_majority(lib)
    t = truth(lib)
    people = {p.name: p.id for p in list_people(lib)}
    # the user fixes things: a wrong face out, one marked not-a-face, one rejected suggestion
    wrong = [f for p in list_people(lib) for f in _owned_ids(lib, p.id) if t.get(f) != p.name]
    if wrong:
        labelling.remove_faces(lib, wrong)
    some = _owned_ids(lib, list_people(lib)[0].id)
    labelling.mark_not_face(lib, some[-1:])
    labelling.set_birth_date(lib, list_people(lib)[1].id, date(1960, 1, 1))
    before = _decisions(lib)
    for person in sorted(full.iterdir()):
        for f in sorted(person.iterdir())[4:]:
            shutil.copy2(f, root / person.name / f.name)
    scan(lib, root, settings)
    report = cluster_faces(lib)
    after = _decisions(lib)
    for key in ("confirmed", "not_faces", "rejections", "people"):
        assert after[key] == before[key], key
    # new faces of named people were offered (auto or suggested) to the right person only
    t = truth(lib)
    names = {v: k for k, v in people.items()}
    with lib.session() as s:
        offered = s.execute(select(Face.id, Face.person_id, Face.assignment).where(
            Face.assignment.in_([Assignment.auto, Assignment.suggested]))).all()
    assert offered, report.summary()
    right = sum(1 for fid, pid, _a in offered if names.get(pid) == t.get(fid))
    auto_wrong = [fid for fid, pid, a in offered if a == Assignment.auto and names.get(pid) != t.get(fid)]
    assert right >= 0.9 * len(offered) and not auto_wrong
    lib.close()


def _owned_ids(lib: Library, pid: int) -> list[int]:
    with lib.session() as s:
        return list(s.scalars(select(Face.id).where(Face.person_id == pid, Face.assignment == Assignment.confirmed).order_by(Face.id)))


OPS = st.lists(st.tuples(st.sampled_from(["name", "remove", "move", "not_face", "split", "reject", "undo",
                                          "merge", "recluster"]), st.integers(0, 10_000)),
               min_size=1, max_size=8)


#: The same 25 sequences on every run (derandomize, no example database), so a run is
#: reproducible; a random run found split-then-name (see below) and failed CI by chance.
@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_operations_then_reclustering_keep_user_decisions(lfw_db: Path, tmp_path_factory: pytest.TempPathFactory,
                                                                  ops: list[tuple[str, int]]) -> None:
    _operations_then_recluster(lfw_db, tmp_path_factory, ops)


def _operations_then_recluster(lfw_db: Path, tmp_path_factory: pytest.TempPathFactory,
                               ops: list[tuple[str, int]]) -> None:
    lib = Library.open(db_url(copy_db(lfw_db, tmp_path_factory.mktemp("prop") / "lib.db")))
    try:
        cluster_faces(lib)
        for op, n in ops:
            _apply(lib, op, n)
        before = _decisions(lib)
        cluster_faces(lib)
        after = _decisions(lib)
        for key in ("confirmed", "not_faces", "rejections", "people"):
            assert after[key] == before[key], key
        # machine assignments: none is taken back; new ones (the anchored pass gives faces to
        # people named since) break no rule; grouping again right away changes nothing
        assert set(before["auto"]) <= set(after["auto"])
        assert_machine_rules(lib, set(after["auto"]) - set(before["auto"]))
        cluster_faces(lib)
        assert _decisions(lib)["auto"] == after["auto"]
    finally:
        lib.close()


def assert_machine_rules(lib: Library, new_auto: set[tuple[int, int]]) -> None:
    """What the machine may never do: offer a face to a person the user rejected for it,
    give a person a second face of a photo, group two faces of one photo, or give a face to
    a person who owns a face the user split away from it."""
    with lib.session() as s:
        rejected = set(s.execute(select(FaceRejection.face_id, FaceRejection.person_id)).all())
        offered = set(s.execute(select(Face.id, Face.person_id).where(Face.assignment.in_(
            [Assignment.auto, Assignment.suggested]))).all())
        assert not rejected & offered
        owned = s.execute(select(Face.id, Face.photo_id, Face.person_id, Face.assignment).where(
            Face.is_face.is_(True), Face.person_id.is_not(None),
            Face.assignment.in_([Assignment.confirmed, Assignment.auto]))).all()
        photo_of = {f: ph for f, ph, _p, _a in owned}
        owner = {f: p for f, _ph, p, _a in owned}
        for f, p in new_auto:
            others = [g for g, ph, q, _a in owned if ph == photo_of[f] and q == p and g != f]
            assert not others, f"face {f} auto-assigned to {p}, who has face {others} in that photo"
        machine_groups = s.execute(select(Face.cluster_id, Face.photo_id).join(Cluster, Cluster.id == Face.cluster_id)
                                   .where(Cluster.run_id.is_not(None), Face.is_face.is_(True))).all()
        assert len(machine_groups) == len(set(machine_groups)), "a group holds two faces of one photo"
        for split, rest in load_split_records(s):
            for side, other in ((split, rest), (rest, split)):
                theirs = {owner[g] for g in other if g in owner}
                bad = [(f, p) for f, p in new_auto if f in side and p in theirs]
                assert not bad, f"{bad} given to a person who owns faces split away from them"


def _apply(lib: Library, op: str, n: int) -> None:
    clusters = list_clusters(lib, limit=100)
    people = list_people(lib, include_hidden=True)
    try:
        if op == "name" and clusters:
            labelling.name_cluster(lib, clusters[n % len(clusters)].id, f"P{n % 4}")
        elif op in ("remove", "move", "not_face") and people:
            faces = _owned_ids(lib, people[n % len(people)].id)
            if faces:
                pick = [faces[n % len(faces)]]
                {"remove": lambda: labelling.remove_faces(lib, pick),
                 "move": lambda: labelling.move_faces(lib, pick, f"P{(n + 1) % 4}"),
                 "not_face": lambda: labelling.mark_not_face(lib, pick)}[op]()
        elif op == "split" and clusters:
            faces = faces_of_cluster(lib, clusters[n % len(clusters)].id)
            labelling.split_faces(lib, faces[: 1 + n % max(1, len(faces) - 1)])
        elif op == "reject" and people and clusters:
            from organizer.suggestions import reject_suggestion
            reject_suggestion(lib, faces_of_cluster(lib, clusters[n % len(clusters)].id)[:1], people[n % len(people)].id)
        elif op == "merge" and len(people) >= 2:
            labelling.merge_people(lib, people[n % len(people)].id, people[(n + 1) % len(people)].id)
        elif op == "undo":
            labelling.undo(lib, 1 + n % 2)
        elif op == "recluster":
            cluster_faces(lib)
    except InvalidRequest:
        pass  # e.g. a cluster whose faces were all rejected for that name: nothing changed


@pytest.mark.parametrize("min_samples", [2, 3, 5])
def test_streaming_dbscan_for_big_libraries_matches_scikit_learn(min_samples: int) -> None:
    from organizer.clustering import dbscan_streaming

    rng = np.random.default_rng(min_samples)
    centres = rng.normal(0, 0.5 / np.sqrt(128), (60, 128))
    x = (centres[rng.integers(0, 60, 1500)] + rng.normal(0, 0.22 / np.sqrt(128), (1500, 128))).astype(np.float32)
    ours = dbscan_streaming(x, 0.4, min_samples)
    theirs = DBSCAN(eps=0.4, min_samples=min_samples).fit(x).labels_
    assert np.array_equal(ours < 0, theirs < 0)
    assert ours.max() == theirs.max() > 5
    # core points agree exactly; border points may join either neighbouring cluster (as in DBSCAN)
    core = np.zeros(len(x), dtype=bool)
    core[DBSCAN(eps=0.4, min_samples=min_samples).fit(x).core_sample_indices_] = True
    assert pairwise_precision_recall(ours[core], theirs[core]) == (1.0, 1.0)
