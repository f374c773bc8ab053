"""Labelling operations on real libraries: each does what it says, is undone exactly, and a
bad request changes nothing."""
from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from sqlalchemy import select

from organizer import labelling
from organizer.browse import get_person, list_clusters, list_people, person_faces
from organizer.clustering import cluster_faces
from organizer.cli import main
from organizer.db import Library
from organizer.errors import ClusterNotFound, FaceNotFound, InvalidRequest, PersonNotFound
from organizer.models import Assignment, Cluster, Face, FaceRejection, Operation, Person, Photo


def snapshot(lib: Library) -> dict:
    """Everything a labelling operation may change (not the operations log itself)."""
    with lib.session() as s:
        return {
            "faces": sorted((f.id, f.person_id, f.assignment, f.confidence, f.cluster_id, f.is_face)
                            for f in s.scalars(select(Face))),
            "people": sorted((p.id, p.name, p.hidden, p.cover_face_id, p.birth_date, p.created_at)
                             for p in s.scalars(select(Person))),
            "rejections": sorted((r.face_id, r.person_id) for r in s.scalars(select(FaceRejection))),
            "clusters": sorted((c.id, c.size, c.run_id) for c in s.scalars(select(Cluster))),
        }


def truth(lib: Library) -> dict[int, str]:
    """{face id: identity} from the photo's folder, for the main (biggest) face of each photo."""
    out = {}
    with lib.session() as s:
        for photo in s.scalars(select(Photo)):
            if photo.faces and "/" in photo.path:
                main_face = max(photo.faces, key=lambda f: (f.bottom - f.top) * (f.right - f.left))
                out[main_face.id] = photo.path.split("/")[-2]
    return out


def faces_of_cluster(lib: Library, cid: int) -> list[int]:
    with lib.session() as s:
        return list(s.scalars(select(Face.id).where(Face.cluster_id == cid).order_by(Face.id)))


def name_by_majority(lib: Library) -> dict[str, int]:
    """Name every cluster after its majority identity (what a user would type)."""
    t = truth(lib)
    ids = {}
    for c in list_clusters(lib, limit=1000):
        votes = Counter(t.get(f, "?") for f in faces_of_cluster(lib, c.id))
        name = votes.most_common(1)[0][0]
        ids[name] = labelling.name_cluster(lib, c.id, name)
    return ids


@pytest.fixture()
def named_lib(lfw_lib: Library) -> Library:
    """The LFW subset, clustered, every cluster named by its majority identity."""
    cluster_faces(lfw_lib)
    name_by_majority(lfw_lib)
    return lfw_lib


def _ops(lib: Library) -> int:
    with lib.session() as s:
        return len(list(s.scalars(select(Operation.id))))


def _owned(lib: Library, person_id: int) -> list[int]:
    return [f.id for f in person_faces(lib, person_id)]


def _some_unnamed_face(lib: Library) -> int:
    with lib.session() as s:
        return s.scalar(select(Face.id).where(Face.person_id.is_(None), Face.is_face.is_(True)).order_by(Face.id))


# --- each operation does what it says, and undo restores the exact previous state ------------

def test_name_cluster_names_every_face_and_an_existing_name_adds_to_that_person(lfw_lib: Library) -> None:
    cluster_faces(lfw_lib)
    first, second = list_clusters(lfw_lib, limit=2)
    members = faces_of_cluster(lfw_lib, first.id)
    pid = labelling.name_cluster(lfw_lib, first.id, "  Ann   Lee ")
    assert get_person(lfw_lib, pid).name == "Ann Lee"
    assert sorted(_owned(lfw_lib, pid)) == members
    assert first.id not in [c.id for c in list_clusters(lfw_lib, limit=100)]
    same = labelling.name_cluster(lfw_lib, second.id, "ann lee")  # case-insensitive: same person
    assert same == pid
    assert get_person(lfw_lib, pid).face_count == first.size + second.size


OPERATIONS = {
    "name_cluster": lambda lib, p, q, f: labelling.name_cluster(lib, list_clusters(lib)[0].id, "Zed"),
    "assign": lambda lib, p, q, f: labelling.assign_faces(lib, [f], "New Person"),
    "assign_existing": lambda lib, p, q, f: labelling.assign_faces(lib, [f, _owned(lib, q)[0]], get_person(lib, p).name),
    "rename": lambda lib, p, q, f: labelling.rename_person(lib, p, "Renamed"),
    "merge": lambda lib, p, q, f: labelling.merge_people(lib, p, q),
    "hide": lambda lib, p, q, f: labelling.set_hidden(lib, p, True),
    "cover": lambda lib, p, q, f: labelling.set_cover(lib, p, _owned(lib, p)[-1]),
    "born": lambda lib, p, q, f: labelling.set_birth_date(lib, p, date(1970, 1, 2)),
    "remove": lambda lib, p, q, f: labelling.remove_faces(lib, _owned(lib, p)[:2]),
    "move": lambda lib, p, q, f: labelling.move_faces(lib, _owned(lib, p)[:2], get_person(lib, q).name),
    "move_new": lambda lib, p, q, f: labelling.move_faces(lib, _owned(lib, p)[:1], "Somebody Else"),
    "not_face": lambda lib, p, q, f: labelling.mark_not_face(lib, [_owned(lib, p)[0], f]),
    "split": lambda lib, p, q, f: labelling.split_faces(lib, faces_of_cluster(lib, list_clusters(lib)[0].id)[:2]),
    "set_aside": lambda lib, p, q, f: labelling.set_aside_faces(lib, faces_of_cluster(lib, list_clusters(lib)[0].id)[:2]),
}


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_every_operation_is_recorded_and_undone_exactly(lfw_lib: Library, op: str) -> None:
    cluster_faces(lfw_lib)
    clusters = list_clusters(lfw_lib, limit=100)
    # name all but the smallest cluster, so there are people and open clusters to work on
    p = labelling.name_cluster(lfw_lib, clusters[0].id, "Person P")
    q = labelling.name_cluster(lfw_lib, clusters[1].id, "Person Q")
    labelling.set_cover(lfw_lib, p, _owned(lfw_lib, p)[0])
    labelling.remove_faces(lfw_lib, [_owned(lfw_lib, q)[-1]])
    f = _some_unnamed_face(lfw_lib)
    before, n_ops = snapshot(lfw_lib), _ops(lfw_lib)
    OPERATIONS[op](lfw_lib, p, q, f)
    assert snapshot(lfw_lib) != before, "the operation changed nothing"
    assert _ops(lfw_lib) == n_ops + 1
    undone = labelling.undo(lfw_lib)
    assert len(undone) == 1 and undone[0] == labelling.history(lfw_lib, 1)[0].description
    assert labelling.history(lfw_lib, 1)[0].undone
    assert snapshot(lfw_lib) == before


def test_remove_remembers_not_this_person(named_lib: Library) -> None:
    person = list_people(named_lib)[0]
    face = _owned(named_lib, person.id)[0]
    labelling.remove_faces(named_lib, [face])
    with named_lib.session() as s:
        f = s.get(Face, face)
        assert (f.person_id, f.assignment, f.cluster_id) == (None, None, None)
        assert s.get(FaceRejection, (face, person.id)) is not None
    from organizer.suggestions import suggest_for_faces
    assert person.id not in [sg.person_id for sg in suggest_for_faces(named_lib, [face], limit=20)[face]]


def test_move_confirms_for_target_and_rejects_the_old_person(named_lib: Library) -> None:
    people = sorted(p.id for p in list_people(named_lib))
    a, b = people[0], people[1]
    faces = _owned(named_lib, a)[:2]
    assert labelling.move_faces(named_lib, faces, get_person(named_lib, b).name) == b
    with named_lib.session() as s:
        for fid in faces:
            f = s.get(Face, fid)
            assert (f.person_id, f.assignment) == (b, Assignment.confirmed)
            assert s.get(FaceRejection, (fid, a)) is not None


def test_merge_moves_faces_rejections_and_birth_date(named_lib: Library) -> None:
    people = sorted(p.id for p in list_people(named_lib))
    a, b = people[0], people[1]
    labelling.set_birth_date(named_lib, a, date(1950, 5, 5))
    rejected = _owned(named_lib, b)[0]
    labelling.remove_faces(named_lib, [rejected])
    labelling.assign_faces(named_lib, [rejected], get_person(named_lib, a).name)  # drops "not a"
    other = _owned(named_lib, a)[0]
    labelling.remove_faces(named_lib, [other])  # "other is not a"
    total = get_person(named_lib, a).face_count + get_person(named_lib, b).face_count
    labelling.merge_people(named_lib, a, b)
    with pytest.raises(PersonNotFound):
        get_person(named_lib, a)
    merged = get_person(named_lib, b)
    assert merged.face_count == total and merged.birth_date == date(1950, 5, 5)
    with named_lib.session() as s:
        assert s.get(FaceRejection, (other, b)) is not None  # "not a" is now "not b"
        assert not list(s.scalars(select(FaceRejection).where(FaceRejection.person_id == a)))


def test_not_a_face_is_excluded_everywhere(named_lib: Library) -> None:
    pid = list_people(named_lib)[0].id
    face = _owned(named_lib, pid)[0]
    count = get_person(named_lib, pid).face_count
    labelling.mark_not_face(named_lib, [face])
    assert get_person(named_lib, pid).face_count == count - 1
    cluster_faces(named_lib)
    with named_lib.session() as s:
        f = s.get(Face, face)
        assert (f.is_face, f.person_id, f.cluster_id) == (False, None, None)
    with pytest.raises(InvalidRequest):
        labelling.assign_faces(named_lib, [face], "Anyone")


def test_undo_several_steps_newest_first(named_lib: Library) -> None:
    pid = list_people(named_lib)[0].id
    before = snapshot(named_lib)
    labelling.rename_person(named_lib, pid, "Step One")
    labelling.set_hidden(named_lib, pid, True)
    labelling.set_birth_date(named_lib, pid, date(2001, 1, 1))
    texts = labelling.undo(named_lib, 3)
    assert [t.split()[0] for t in texts] == ["set", "hid", "renamed"]
    assert snapshot(named_lib) == before
    assert [h.undone for h in labelling.history(named_lib, 3)] == [True, True, True]


def test_undo_with_nothing_left_returns_nothing(people_small_lib: Library) -> None:
    assert labelling.undo(people_small_lib) == []
    with pytest.raises(InvalidRequest):
        labelling.undo(people_small_lib, 0)


# --- bad requests change nothing ------------------------------------------------------------

BAD_REQUESTS = {
    "unknown cluster": (ClusterNotFound, lambda lib, p, f: labelling.name_cluster(lib, 99999, "X")),
    "empty name": (InvalidRequest, lambda lib, p, f: labelling.name_cluster(lib, list_clusters(lib)[0].id, "")),
    "blank name": (InvalidRequest, lambda lib, p, f: labelling.assign_faces(lib, [f], " \t ")),
    "unknown face among known": (FaceNotFound, lambda lib, p, f: labelling.assign_faces(lib, [f, 987654], "New")),
    "no faces": (InvalidRequest, lambda lib, p, f: labelling.assign_faces(lib, [], "New")),
    "unknown person rename": (PersonNotFound, lambda lib, p, f: labelling.rename_person(lib, 99999, "X")),
    "rename to taken name": (InvalidRequest, lambda lib, p, f: labelling.rename_person(lib, p, "OTHER one")),
    "merge into self": (InvalidRequest, lambda lib, p, f: labelling.merge_people(lib, p, p)),
    "merge unknown": (PersonNotFound, lambda lib, p, f: labelling.merge_people(lib, p, 99999)),
    "cover not theirs": (InvalidRequest, lambda lib, p, f: labelling.set_cover(lib, p, f)),
    "cover unknown face": (FaceNotFound, lambda lib, p, f: labelling.set_cover(lib, p, 987654)),
    "future birth": (InvalidRequest, lambda lib, p, f: labelling.set_birth_date(lib, p, date(2999, 1, 1))),
    "remove unowned": (InvalidRequest, lambda lib, p, f: labelling.remove_faces(lib, [_owned(lib, p)[0], f])),
    "split confirmed": (InvalidRequest, lambda lib, p, f: labelling.split_faces(lib, [f, _owned(lib, p)[0]])),
    "hide twice": (InvalidRequest, lambda lib, p, f: labelling.set_hidden(lib, p, False)),
    "too long name": (InvalidRequest, lambda lib, p, f: labelling.move_faces(lib, [f], "x" * 500)),
    # int() would take these as faces 1 / 2 / 3 (acting on faces nobody picked), and SQLite
    # cannot look up a number past 64 bits at all
    "True as a face id": (InvalidRequest, lambda lib, p, f: labelling.assign_faces(lib, [True], "New")),
    "float face id": (InvalidRequest, lambda lib, p, f: labelling.assign_faces(lib, [float(f)], "New")),
    "text face id": (InvalidRequest, lambda lib, p, f: labelling.assign_faces(lib, [str(f)], "New")),
    "huge face id": (InvalidRequest, lambda lib, p, f: labelling.assign_faces(lib, [10 ** 30], "New")),
    "huge cluster id": (ClusterNotFound, lambda lib, p, f: labelling.name_cluster(lib, 10 ** 30, "X")),
    "huge person id": (PersonNotFound, lambda lib, p, f: labelling.rename_person(lib, 10 ** 30, "X")),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_changes_nothing(lfw_lib: Library, case: str) -> None:
    cluster_faces(lfw_lib)
    clusters = list_clusters(lfw_lib, limit=100)
    p = labelling.name_cluster(lfw_lib, clusters[0].id, "Some One")
    labelling.name_cluster(lfw_lib, clusters[1].id, "Other One")
    f = _some_unnamed_face(lfw_lib)
    before, n_ops = snapshot(lfw_lib), _ops(lfw_lib)
    error, call = BAD_REQUESTS[case]
    with pytest.raises(error) as info:
        call(lfw_lib, p, f)
    assert str(info.value) and "\n" not in str(info.value)
    assert snapshot(lfw_lib) == before and _ops(lfw_lib) == n_ops


# --- the command line, end to end --------------------------------------------------------------

def test_cli_labels_a_library_end_to_end(lfw_lib: Library, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--db", lfw_lib.engine.url.database]
    assert main(["cluster", *db]) == 0
    clusters = list_clusters(lfw_lib, limit=100)
    t = truth(lfw_lib)
    for c in clusters:
        name = Counter(t.get(f, "?") for f in faces_of_cluster(lfw_lib, c.id)).most_common(1)[0][0]
        assert main(["name", str(c.id), name, *db]) == 0
    assert main(["people", *db]) == 0
    listing = capsys.readouterr().out
    assert all(p.name in listing for p in list_people(lfw_lib))
    someone = list_people(lfw_lib)[0]
    capsys.readouterr()
    assert main(["merge", "Nobody At All", someone.name, *db]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Nobody At All" in err
    assert main(["rename", someone.name, "Renamed Person", *db]) == 0
    assert main(["born", "renamed person", "1980-02-03", *db]) == 0
    assert get_person(lfw_lib, someone.id).birth_date == date(1980, 2, 3)
    assert main(["born", "Renamed Person", "yesterday", *db]) == 2
    face = _owned(lfw_lib, someone.id)[0]
    assert main(["remove", str(face), *db]) == 0
    assert main(["assign", str(face), "--to", "Renamed Person", *db]) == 0
    assert main(["hide", "Renamed Person", *db]) == 0
    assert main(["history", *db]) == 0
    assert "hid Renamed Person" in capsys.readouterr().out
    assert main(["undo", "2", *db]) == 0
    assert not get_person(lfw_lib, someone.id).hidden
    assert main(["suggest", *db]) == 0
    assert main(["clusters", *db]) == 0
    assert main(["not-a-face", "987654", *db]) == 1


def _stored_vs_actual_cluster_sizes(lib: Library) -> tuple[dict[int, int], dict[int, int]]:
    """(Cluster.size as stored, the number of open faces counted from the faces) per cluster."""
    from sqlalchemy import func

    from organizer.queries import live, unowned

    with lib.session() as s:
        stored = dict(s.execute(select(Cluster.id, Cluster.size)).all())
        counted = dict(s.execute(select(Face.cluster_id, func.count(Face.id))
                                 .where(Face.cluster_id.is_not(None), live(), unowned())
                                 .group_by(Face.cluster_id)).all())
    return stored, {cid: counted.get(cid, 0) for cid in stored}


def test_cluster_sizes_stay_exact_after_every_operation_and_undo(lfw_lib: Library) -> None:
    """Cluster.size (what the status page counts groups by) is the number of the cluster's
    open faces after every operation, every undo and every re-clustering; list_clusters
    reports the same sizes."""
    from organizer.suggestions import accept_suggestion, next_suggestion, reject_suggestion

    cluster_faces(lfw_lib)

    def check(step: str) -> None:
        stored, actual = _stored_vs_actual_cluster_sizes(lfw_lib)
        assert stored == actual, step
        assert {c.id: c.size for c in list_clusters(lfw_lib, limit=1000)} == {
            cid: n for cid, n in actual.items() if n > 0}, step

    check("clustered")
    clusters = list_clusters(lfw_lib, limit=1000)
    alice = labelling.name_cluster(lfw_lib, clusters[0].id, "Alice")
    check("name")
    bob = labelling.name_cluster(lfw_lib, clusters[1].id, "Bob")
    check("name 2")
    new_group = labelling.split_faces(lfw_lib, faces_of_cluster(lfw_lib, clusters[2].id)[:2])
    check("split")
    labelling.assign_faces(lfw_lib, faces_of_cluster(lfw_lib, new_group)[:1], "Carol")
    check("assign from a group")
    labelling.remove_faces(lfw_lib, _owned(lfw_lib, alice)[:1])
    check("remove")
    labelling.move_faces(lfw_lib, _owned(lfw_lib, bob)[:1], "Alice")
    check("move")
    labelling.mark_not_face(lfw_lib, faces_of_cluster(lfw_lib, clusters[3].id)[:1])
    check("not a face")
    cluster_faces(lfw_lib)
    check("re-clustered with people named")
    item = next_suggestion(lfw_lib)
    if item is not None:
        accept_suggestion(lfw_lib, item.face_ids[:1], item.person_id)
        check("accept")
        if len(item.face_ids) > 1:
            reject_suggestion(lfw_lib, item.face_ids[1:2], item.person_id)
            check("reject")
    labelling.merge_people(lfw_lib, bob, alice)
    check("merge")
    while labelling.undo(lfw_lib):
        check("undo")
