"""Batch questions, "It's <name>" for groups, "Same person?", the same-photo rule for every
user action, the birth-date rule for suggestions, and Unassigned stacks: on a small
synthetic library (no dlib, no photo set; organizer.testing's scale: one person's faces
~0.35 apart, two people ~0.95), plus real-embedding checks on the LFW subset."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from organizer import browse, labelling, questions, stacks
from organizer import suggestions as sg
from organizer.clustering import cluster_faces
from organizer.db import Library
from organizer.errors import InvalidRequest
from organizer.labelling import SamePhotoConflict
from organizer.models import Assignment, Cluster, ClusterRun, Face, FaceRejection, Person, Photo, embedding_to_bytes
from organizer.testing import CENTRE_SD, FACE_SD

from .conftest import built_db, faces_in, library_copy
from .test_labelling import faces_of_cluster, snapshot, truth

TAKEN = datetime(2010, 6, 1, 12, 0)
#: identity -> (faces, confirmed first n, where the rest wait: groups of sizes / None = no group)
PLAN = {
    "Ada": (10, 4, [3, 3]),      # two open groups: the second group of a named person
    "Ben": (10, 4, [6]),
    "Cleo": (6, 2, None),        # stray faces of a named person
    "Dan": (4, 0, None),         # stray look-alikes of nobody (a stack)
    "Finn": (3, 0, [3]),         # a legacy group holding two faces of one photo (photo "shared/finn")
}


def _build(db: Path) -> None:
    rng = np.random.default_rng(7)
    lib = Library.open(f"sqlite:///{db}")
    centres = {name: rng.normal(0.0, CENTRE_SD, 128) for name in [*PLAN, "Gus"]}

    def vec(name: str) -> bytes:
        return embedding_to_bytes((centres[name] + rng.normal(0.0, FACE_SD, 128)).astype(np.float32))

    with lib.session() as s:
        run = ClusterRun(eps=0.4, min_samples=2)
        s.add(run)
        s.flush()

        def photo(path: str) -> Photo:
            p = Photo(path=path, width=400, height=300, taken_at=TAKEN, taken_at_source="exif")
            s.add(p)
            s.flush()
            return p

        def face(p: Photo, name: str, k: int, left: int = 10) -> Face:
            f = Face(photo_id=p.id, top=10, right=left + 50, bottom=60, left=left, size=50,
                     quality=0.5 + k / 100, embedding=vec(name))
            s.add(f)
            return f

        finn_shared = photo("shared/finn.jpg")
        for name, (n, confirmed, groups) in PLAN.items():
            person = Person(name=name) if confirmed else None
            if person is not None:
                s.add(person)
                s.flush()
            waiting: list[Face] = []
            for k in range(n):
                p = finn_shared if name == "Finn" and k < 2 else photo(f"{name}/{k}.jpg")
                f = face(p, name, k, left=10 + 60 * k)
                if person is not None and k < confirmed:
                    f.person_id, f.assignment, f.confidence = person.id, Assignment.confirmed, 1.0
                else:
                    waiting.append(f)
            for size in groups or []:
                c = Cluster(run_id=run.id, size=0)
                s.add(c)
                s.flush()
                for f in waiting[:size]:
                    f.cluster_id = c.id
                waiting = waiting[size:]
        # a group photo: Ben (confirmed) next to a face that looks like Ben (his twin "Gus"
        # is far; this one is drawn from Ben) and a face drawn from Ada
        group = photo("group/party.jpg")
        ben = s.scalar(select(Person).where(Person.name == "Ben"))
        assert ben is not None
        f = face(group, "Ben", 0, left=10)
        f.person_id, f.assignment, f.confidence = ben.id, Assignment.confirmed, 1.0
        face(group, "Ben", 1, left=80)
        face(group, "Ada", 2, left=150)
        # two open faces of Cleo in one photo (a mirror shot)
        mirror = photo("group/mirror.jpg")
        face(mirror, "Cleo", 0, left=10)
        face(mirror, "Cleo", 1, left=80)
    with lib.session() as s:
        labelling.refresh_cluster_sizes(s, s.scalars(select(Cluster.id)))
    lib.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_db(tmp_path_factory, "questions", _build)


@pytest.fixture()
def lib(template: Path, tmp_path: Path) -> Iterator[Library]:
    yield from library_copy(template, tmp_path)


def open_faces(lib: Library, name: str) -> list[int]:
    with lib.session() as s:
        return list(s.scalars(select(Face.id).join(Photo).where(
            Photo.path.like(f"{name}/%"), Face.assignment.is_(None)).order_by(Face.id)))


def groups_of(lib: Library, name: str) -> list[int]:
    with lib.session() as s:
        return sorted(set(s.scalars(select(Face.cluster_id).join(Photo).where(
            Photo.path.like(f"{name}/%"), Face.cluster_id.is_not(None)))))


def pid(lib: Library, name: str) -> int:
    return browse.find_person(lib, name).id


def owned_by(lib: Library, name: str) -> set[int]:
    return {f.id for f in browse.person_faces(lib, pid(lib, name), limit=1000)}


def rejections(lib: Library) -> set[tuple[int, int]]:
    with lib.session() as s:
        return {(r.face_id, r.person_id) for r in s.scalars(select(FaceRejection))}


# --- batch questions ----------------------------------------------------------------------------

def question_of(lib: Library, name: str, **kw: object) -> questions.BatchQuestion:
    found = [q for q in questions.batch_questions(lib, **kw) if q.person_name == name]  # type: ignore[arg-type]
    assert len(found) == 1, f"one question for {name}"
    return found[0]


def test_a_batch_question_gathers_every_group_and_stray_face_of_a_person_most_certain_first(lib: Library) -> None:
    ada = question_of(lib, "Ada")
    assert set(ada.face_ids) == set(open_faces(lib, "Ada")) | {faces_in(lib, "group/party")[2]}
    assert sorted(ada.cluster_ids) == groups_of(lib, "Ada")
    assert ada.confidences == sorted(ada.confidences, reverse=True)
    assert ada.cover_face_id in owned_by(lib, "Ada")
    assert ada.evidence_face_ids and set(ada.evidence_face_ids) <= owned_by(lib, "Ada")
    capped = question_of(lib, "Ada", cap=2)
    assert capped.face_ids == ada.face_ids[:2] and capped.more == len(ada.face_ids) - 2


def test_accepting_a_batch_with_unticks_is_one_operation_and_one_undo_takes_it_back(lib: Library) -> None:
    q = question_of(lib, "Ada")
    ticked, unticked = q.face_ids[:-2], q.face_ids[-2:]
    before, before_owned = snapshot(lib), owned_by(lib, "Ada")
    done = questions.accept_batch(lib, q.person_id, ticked, left_out=unticked)
    assert done.accepted == ticked and done.left_out == unticked
    assert owned_by(lib, "Ada") == before_owned | set(ticked)
    assert {(f, q.person_id) for f in unticked} <= rejections(lib)
    assert not {(f, q.person_id) for f in ticked} & rejections(lib)
    assert all(f.cluster_id is None and f.person_id is None for f in browse.get_faces(lib, unticked))
    [op] = labelling.history(lib, 1)
    assert op.kind == "accept_batch" and op.description == done.description
    assert all(f not in unticked for q2 in questions.batch_questions(lib) if q2.person_id == q.person_id
               for f in q2.face_ids)
    assert labelling.undo(lib) == [done.description]
    assert snapshot(lib) == before
    assert question_of(lib, "Ada").face_ids == q.face_ids   # the index follows the undo


def test_a_bad_batch_answer_changes_nothing(lib: Library) -> None:
    q = question_of(lib, "Ada")
    before = snapshot(lib)
    with pytest.raises(InvalidRequest, match="both ticked and left out"):
        questions.accept_batch(lib, q.person_id, q.face_ids[:2], left_out=q.face_ids[1:3])
    with pytest.raises(InvalidRequest, match="confirmed as Ada"):
        questions.accept_batch(lib, q.person_id, q.face_ids[:1], left_out=sorted(owned_by(lib, "Ada"))[:1])
    assert snapshot(lib) == before


def test_rejecting_a_batch_remembers_every_face(lib: Library) -> None:
    q = question_of(lib, "Cleo")
    questions.reject_batch(lib, q.person_id, q.face_ids)
    assert {(f, q.person_id) for f in q.face_ids} <= rejections(lib)
    again = [f for x in questions.batch_questions(lib) if x.person_id == q.person_id for f in x.face_ids]
    assert not set(again) & set(q.face_ids)
    assert again == [f for f in faces_in(lib, "group/mirror") if f not in q.face_ids]  # its photo-mate waited


# --- two faces of one photo --------------------------------------------------------------------

def test_a_question_never_holds_two_faces_of_one_photo(lib: Library) -> None:
    mirror = faces_in(lib, "group/mirror")
    cleo = question_of(lib, "Cleo")
    assert len(set(cleo.face_ids) & set(mirror)) == 1
    for item in sg.all_suggestions(lib):
        photos = [f.photo_id for f in browse.get_faces(lib, item.face_ids)]
        assert len(photos) == len(set(photos))


def test_nobody_is_suggested_for_a_face_in_a_photo_where_they_already_are(lib: Library) -> None:
    _ben, ben_lookalike, ada_lookalike = faces_in(lib, "group/party")
    got = sg.suggest_for_faces(lib, [ben_lookalike, ada_lookalike])
    assert "Ben" not in [x.person_name for x in got[ben_lookalike]]
    assert got[ada_lookalike][0].person_name == "Ada"
    assert all(ben_lookalike not in q.face_ids for q in questions.batch_questions(lib))
    # once the Ada look-alike is someone else's, Ada is still free for it; once Ben's face
    # there is taken away from him, Ben is suggested again (the index follows photo-mates)
    labelling.remove_faces(lib, [_ben])
    assert sg.suggest_for_faces(lib, [ben_lookalike])[ben_lookalike][0].person_name == "Ben"


def refused(call, *expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SamePhotoConflict) as info:
        call()
    text = str(info.value)
    assert "\n" not in text and "one photo" in text and info.value.photos
    for part in expected:
        assert part in text


def test_every_user_action_refuses_a_second_face_of_a_photo_unless_forced(lib: Library) -> None:
    ben_face, ben_lookalike, ada_lookalike = faces_in(lib, "group/party")
    mirror = faces_in(lib, "group/mirror")
    ben, cleo = pid(lib, "Ben"), pid(lib, "Cleo")
    before = snapshot(lib)
    refused(lambda: labelling.assign_faces(lib, [ben_lookalike], "Ben"), "group/party.jpg", str(ben_face))
    refused(lambda: labelling.assign_faces(lib, mirror, "Somebody New"), "group/mirror.jpg")
    refused(lambda: labelling.move_faces(lib, [ben_lookalike], "ben"), "Ben")
    refused(lambda: sg.accept_suggestion(lib, [ben_lookalike], ben))
    refused(lambda: questions.accept_batch(lib, cleo, mirror))
    assert snapshot(lib) == before
    labelling.assign_faces(lib, [ben_lookalike], "Ben", force=True)
    assert ben_lookalike in owned_by(lib, "Ben")
    labelling.undo(lib)
    questions.accept_batch(lib, cleo, mirror, force=True)
    assert set(mirror) <= owned_by(lib, "Cleo")


def test_naming_a_group_checks_its_faces_and_the_persons_photos(lib: Library) -> None:
    [finn_group] = groups_of(lib, "shared/finn") or groups_of(lib, "Finn")
    before = snapshot(lib)
    refused(lambda: labelling.name_cluster(lib, finn_group, "Finn"), "shared/finn.jpg")
    assert snapshot(lib) == before
    two = faces_in(lib, "shared/finn")
    labelling.name_cluster(lib, finn_group, "Finn", left_out=two[1:])  # untick one of the pair: fine
    assert two[0] in owned_by(lib, "Finn") and two[1] not in owned_by(lib, "Finn")
    labelling.undo(lib)
    labelling.name_cluster(lib, finn_group, "Finn", force=True)
    assert set(two) <= owned_by(lib, "Finn")
    # a group whose face is in a photo where the person already is
    ben_face, ben_lookalike, _ada = faces_in(lib, "group/party")
    lone = labelling.split_faces(lib, [ben_lookalike])
    refused(lambda: labelling.name_cluster(lib, lone, "Ben"), str(ben_face))


def test_merging_two_people_seen_in_one_photo_is_refused_unless_forced(lib: Library) -> None:
    _ben, _lookalike, ada_lookalike = faces_in(lib, "group/party")
    labelling.assign_faces(lib, [ada_lookalike], "Ada")
    before = snapshot(lib)
    refused(lambda: labelling.merge_people(lib, pid(lib, "Ada"), pid(lib, "Ben")),
            "Ada and Ben are both in 1 photo", "group/party.jpg")
    assert snapshot(lib) == before
    labelling.merge_people(lib, pid(lib, "Ada"), pid(lib, "Ben"), force=True)
    assert ada_lookalike in owned_by(lib, "Ben")


# --- birth dates -------------------------------------------------------------------------------

def test_nobody_is_suggested_for_a_photo_taken_before_they_were_born(lib: Library) -> None:
    cleo = pid(lib, "Cleo")
    waiting = open_faces(lib, "Cleo")
    assert question_of(lib, "Cleo")
    labelling.set_birth_date(lib, cleo, date(2011, 1, 1))          # after the photos
    assert all(q.person_id != cleo for q in questions.batch_questions(lib))
    assert all(x.person_id != cleo for got in sg.suggest_for_faces(lib, waiting).values() for x in got)
    fresh = sg.SuggestionIndex()
    with lib.session() as s:
        fresh.refresh(s)
        built = fresh.items(set())
    assert built == sg.all_suggestions(lib)   # the kept index followed the birth date
    labelling.set_birth_date(lib, cleo, date(2009, 1, 1))          # before them
    assert set(waiting) & set(question_of(lib, "Cleo").face_ids)


# --- groups offered as a named person, "Same person?" -------------------------------------------

def test_a_second_group_of_a_named_person_is_offered_as_that_person(lib: Library) -> None:
    first, second = groups_of(lib, "Ada")
    offers = questions.group_offers(lib, [first, second, *groups_of(lib, "Finn")])
    assert {c: o.person_name for c, o in offers.items()} == {first: "Ada", second: "Ada"}
    assert questions.group_offer(lib, second).size == 3  # type: ignore[union-attr]
    questions.accept_group_offer(lib, first, pid(lib, "Ada"))
    offer = questions.group_offer(lib, second)
    assert offer is not None and offer.person_name == "Ada" and offer.matching == faces_of_cluster(lib, second)


def test_two_named_people_with_very_close_faces_are_asked_about_and_different_is_remembered(lib: Library) -> None:
    assert questions.merge_questions(lib) == []
    labelling.assign_faces(lib, open_faces(lib, "Dan")[:2], "Dan")
    labelling.assign_faces(lib, open_faces(lib, "Dan")[:2], "Daniel")
    [q] = questions.merge_questions(lib)
    assert {q.name_a, q.name_b} == {"Dan", "Daniel"} and q.distance <= questions.MERGE_DISTANCE
    labelling.keep_apart(lib, q.person_a, q.person_b)
    assert questions.merge_questions(lib) == []
    with pytest.raises(InvalidRequest, match="already said"):
        labelling.keep_apart(lib, q.person_b, q.person_a)
    labelling.undo(lib)
    assert len(questions.merge_questions(lib)) == 1
    labelling.merge_people(lib, q.person_a, q.person_b)
    assert questions.merge_questions(lib) == []


# --- stacks ------------------------------------------------------------------------------------

def test_unassigned_stacks_hold_only_unassigned_faces_look_alikes_together_biggest_first(lib: Library) -> None:
    got = stacks.unassigned_stacks(lib, limit=1000)
    with lib.session() as s:
        open_ids = set(s.scalars(select(Face.id).where(Face.cluster_id.is_(None), Face.is_face.is_(True),
                                                       Face.person_id.is_(None))))
    listed = [f for st in got for f in st.face_ids]
    assert sorted(listed) == sorted(open_ids) and len(listed) == len(set(listed))
    assert [st.size for st in got] == sorted((st.size for st in got), reverse=True)
    dan = set(open_faces(lib, "Dan"))
    assert any(set(st.face_ids) == dan for st in got)
    for st in got:
        photos = [f.photo_id for f in browse.get_faces(lib, st.face_ids)]
        assert len(photos) == len(set(photos))
    # name a stack in one action with one face left out; the stacks follow
    [dan_stack] = [st for st in got if set(st.face_ids) == dan]
    labelling.assign_faces(lib, dan_stack.face_ids[:-1], "Dan", left_out=dan_stack.face_ids[-1:])
    assert stacks.count_stacks(lib) == len(got) - 1 + 1   # the left-out face is a stack of its own
    assert all(f not in owned_by(lib, "Dan") for st in stacks.unassigned_stacks(lib) for f in st.face_ids)


# --- real embeddings (skip without ../shared/photos) ---------------------------------------------

def test_real_batch_accept_with_unticks_and_one_undo(lfw_lib: Library) -> None:
    cluster_faces(lfw_lib)
    t = truth(lfw_lib)
    for c in browse.list_clusters(lfw_lib, limit=100):
        faces = faces_of_cluster(lfw_lib, c.id)
        labelling.assign_faces(lfw_lib, faces[:2], t[faces[0]])   # two faces of every group named
    q = questions.next_batch_question(lfw_lib)
    assert q is not None and len(q.face_ids) >= 3
    assert sum(t.get(f) == q.person_name for f in q.face_ids) >= 0.9 * len(q.face_ids)
    before, owned = snapshot(lfw_lib), {f.id for f in browse.person_faces(lfw_lib, q.person_id)}
    questions.accept_batch(lfw_lib, q.person_id, q.face_ids[1:], left_out=q.face_ids[:1])
    assert {f.id for f in browse.person_faces(lfw_lib, q.person_id)} == owned | set(q.face_ids[1:])
    assert (q.face_ids[0], q.person_id) in rejections(lfw_lib)
    labelling.undo(lfw_lib)
    assert snapshot(lfw_lib) == before


def test_real_second_group_of_a_named_person_is_offered_as_that_person(lfw_lib: Library) -> None:
    cluster_faces(lfw_lib)
    first = browse.list_clusters(lfw_lib, limit=1)[0]
    faces = faces_of_cluster(lfw_lib, first.id)
    second = labelling.split_faces(lfw_lib, faces[len(faces) // 2:])
    name = truth(lfw_lib)[faces[0]]
    person = labelling.name_cluster(lfw_lib, first.id, name)
    offer = questions.group_offer(lfw_lib, second)
    assert offer is not None and offer.person_id == person and offer.person_name == name
    assert [q for q in questions.batch_questions(lfw_lib) if q.person_id == person][0].cluster_ids == [second]
