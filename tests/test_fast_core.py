"""The core rules on small synthetic libraries: ids, names, person look-up, labelling, undo,
suggestions and clustering's bookkeeping. No dlib, no photo set: embeddings are drawn around
random identity centres (organizer.testing's scale: one person ~0.35 apart, two people
~0.95), so the whole file runs in seconds.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import func, select

from organizer import browse, labelling, neighbours, queries
from organizer import suggestions as sg
from organizer.clustering import cluster_after_scan
from organizer.db import Library
from organizer.errors import FaceNotFound, InvalidRequest, PersonNotFound
from organizer.ids import MAX_ID, as_id, is_id
from organizer.models import Assignment, Cluster, ClusterRun, Face, Person, Photo, embedding_to_bytes
from organizer.queries import FaceState
from organizer.testing import CENTRE_SD, FACE_SD, generate_library

from .conftest import built_db, faces_in, library_copy
from .test_labelling import snapshot

IDENTITIES = ("Ada", "Ben", "Cleo", "Dan")
FACES_EACH = 8
#: faces of each identity confirmed at the start (the rest wait, in one group per identity)
CONFIRMED = 4


def _build(db: Path) -> None:
    """Four identities x eight faces, one face per photo; the first four of Ada, Ben and
    Cleo confirmed, Dan nobody's; each identity's other faces in one machine-made group."""
    rng = np.random.default_rng(12)
    lib = Library.open(f"sqlite:///{db}")
    centres = rng.normal(0.0, CENTRE_SD, (len(IDENTITIES), 128))
    with lib.session() as s:
        run = ClusterRun(eps=0.4, min_samples=2)
        s.add(run)
        s.flush()
        for n, name in enumerate(IDENTITIES):
            person = Person(name=name) if name != "Dan" else None
            cluster = Cluster(run_id=run.id, size=0)
            s.add_all([c for c in (person, cluster) if c is not None])
            s.flush()
            for k in range(FACES_EACH):
                photo = Photo(path=f"{name}/{k}.jpg", width=400, height=300)
                s.add(photo)
                s.flush()
                vec = (centres[n] + rng.normal(0.0, FACE_SD, 128)).astype(np.float32)
                face = Face(photo_id=photo.id, top=10, right=60, bottom=60, left=10, size=50,
                            quality=0.5 + k / 100, embedding=embedding_to_bytes(vec))
                if person is not None and k < CONFIRMED:
                    face.person_id, face.assignment, face.confidence = person.id, Assignment.confirmed, 1.0
                else:
                    face.cluster_id = cluster.id
                s.add(face)
    with lib.session() as s:
        labelling.refresh_cluster_sizes(s, s.scalars(select(Cluster.id)))
    lib.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_db(tmp_path_factory, "fast", _build)


@pytest.fixture()
def lib(template: Path, tmp_path: Path) -> Iterator[Library]:
    yield from library_copy(template, tmp_path)


def faces_of(lib: Library, name: str) -> list[int]:
    """Ids of the faces drawn for identity ``name`` (from the photo folder), in order."""
    return faces_in(lib, f"{name}/")


def pid(lib: Library, name: str) -> int:
    return browse.find_person(lib, name).id


# --- ids ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, False, 2.5, 2.0, "3", None, 0, -1, MAX_ID + 1, 10 ** 30, [1]])
def test_what_is_not_an_id_is_refused(value: object) -> None:
    assert not is_id(value)
    with pytest.raises(InvalidRequest, match="is not a person id"):
        as_id(value, "person id")


def test_numpy_integers_are_ids() -> None:
    assert as_id(np.int64(7)) == 7 and type(as_id(np.int32(7))) is int
    assert as_id(MAX_ID) == MAX_ID


# --- names ----------------------------------------------------------------------------------------

def test_names_are_normalised_once_for_every_use() -> None:
    decomposed = "Jose\u0301\u200b  \t Smith "
    assert queries.normalise_name(decomposed) == "José Smith"
    assert queries.normalise_name(None) == ""
    assert queries.clean_name("  Ann   Lee ") == "Ann Lee"
    for bad in ("", "   ", "\u200b\u200d", None):
        with pytest.raises(InvalidRequest, match="cannot be empty"):
            queries.clean_name(bad)
    with pytest.raises(InvalidRequest, match="at most"):
        queries.clean_name("x" * (queries.NAME_MAX + 1))
    assert queries.faces_text(1) == "1 face" and queries.faces_text(2) == "2 faces"


def test_one_rule_finds_a_person_by_name_or_id(lib: Library) -> None:
    ada = pid(lib, "Ada")
    labelling.rename_person(lib, ada, "Élodie")
    with lib.session() as s:
        assert queries.resolve_person(s, "  élodie ").id == ada        # case folded beyond ASCII
        assert queries.resolve_person(s, "E\u0301lodie").id == ada     # the other Unicode form
        assert queries.resolve_person(s, ada).id == ada
        assert queries.resolve_person(s, np.int64(ada)).id == ada
        assert queries.resolve_person(s, str(ada)).id == ada           # digits nobody is called
        for bad in (True, 2.5, 0, 10 ** 30):
            with pytest.raises(InvalidRequest):
                queries.resolve_person(s, bad)  # type: ignore[arg-type]
        with pytest.raises(PersonNotFound, match="Zed"):
            queries.resolve_person(s, "Zed")
        with pytest.raises(PersonNotFound, match="id 987654"):
            queries.resolve_person(s, "987654")
        with pytest.raises(PersonNotFound, match="id 9999999999999999999999"):
            queries.resolve_person(s, "9999999999999999999999")
        with pytest.raises(PersonNotFound):
            queries.resolve_person(s, "7" * 5000)  # more digits than int() converts
        with pytest.raises(PersonNotFound):
            queries.resolve_person(s, 987654)
    # a name made of digits is a name first
    ben = pid(lib, "Ben")
    labelling.rename_person(lib, ben, str(ada))
    assert browse.find_person(lib, str(ada)).id == ben
    assert browse.find_person(lib, ada).id == ada


def test_two_people_whose_names_differ_only_in_case_are_not_guessed_between(lib: Library) -> None:
    labelling.rename_person(lib, pid(lib, "Ada"), "ann")
    with lib.session() as s:
        s.add(Person(name="ANN"))
    with lib.session() as s:
        assert queries.person_by_name(s, "Ann") is None
        assert [p.name for p in queries.people_named(s, "aNN")] == ["ann", "ANN"]
        assert queries.person_by_name(s, "ANN").name == "ANN"  # an exact match wins


def test_rename_refuses_a_name_another_person_has_in_any_case(lib: Library) -> None:
    ada, ben = pid(lib, "Ada"), pid(lib, "Ben")
    labelling.rename_person(lib, ben, "Élodie")
    before = snapshot(lib)
    with pytest.raises(InvalidRequest, match="merge"):
        labelling.rename_person(lib, ada, "élodie")   # SQLite's lower() leaves "É" as it is: it let this in
    assert snapshot(lib) == before
    labelling.rename_person(lib, ada, "ADA")             # one's own name in other case is fine
    assert browse.get_person(lib, ada).name == "ADA"


def test_birth_dates_are_parsed_in_the_core() -> None:
    assert labelling.parse_birth_date(" 2015-06-30 ") == date(2015, 6, 30)
    for unknown in (None, "", "  ", "none", "Unknown", "-"):
        assert labelling.parse_birth_date(unknown) is None
    for bad in ("31/12/1815", "yesterday", "2015-13-01"):
        with pytest.raises(InvalidRequest, match="YYYY-MM-DD"):
            labelling.parse_birth_date(bad)


# --- labelling and undo ---------------------------------------------------------------------------

def _dan_group(lib: Library) -> int:
    with lib.session() as s:
        return s.scalar(select(Face.cluster_id).where(Face.id == faces_of(lib, "Dan")[0]))


OPERATIONS = {
    "name_cluster": lambda lib: labelling.name_cluster(lib, _dan_group(lib), "dan"),
    "assign": lambda lib: labelling.assign_faces(lib, faces_of(lib, "Dan")[:2], "Dan"),
    "move": lambda lib: labelling.move_faces(lib, faces_of(lib, "Ada")[:2], "ben"),
    "remove": lambda lib: labelling.remove_faces(lib, faces_of(lib, "Ada")[:2]),
    "merge": lambda lib: labelling.merge_people(lib, pid(lib, "Ada"), pid(lib, "Ben")),
    "rename": lambda lib: labelling.rename_person(lib, pid(lib, "Ada"), "Ada Lovelace"),
    "hide": lambda lib: labelling.set_hidden(lib, pid(lib, "Ada"), True),
    "cover": lambda lib: labelling.set_cover(lib, pid(lib, "Ada"), faces_of(lib, "Ada")[1]),
    "born": lambda lib: labelling.set_birth_date(lib, pid(lib, "Ada"), date(1815, 12, 10)),
    "not_face": lambda lib: labelling.mark_not_face(lib, faces_of(lib, "Dan")[:1]),
    "split": lambda lib: labelling.split_faces(lib, faces_of(lib, "Dan")[:3]),
    "set_aside": lambda lib: labelling.set_aside_faces(lib, faces_of(lib, "Dan")[:3]),
    "accept": lambda lib: sg.accept_suggestion(lib, faces_of(lib, "Ada")[CONFIRMED:], pid(lib, "Ada")),
    "reject": lambda lib: sg.reject_suggestion(lib, faces_of(lib, "Dan")[:2], pid(lib, "Ada")),
}


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_every_operation_is_one_record_and_undone_exactly(lib: Library, op: str) -> None:
    before = snapshot(lib)
    OPERATIONS[op](lib)
    assert snapshot(lib) != before, "the operation changed nothing"
    [done] = labelling.history(lib, 1)
    assert labelling.undo(lib) == [done.description]
    assert snapshot(lib) == before
    assert labelling.undo(lib) == []


def test_set_aside_takes_faces_out_of_their_group_and_says_so(lib: Library) -> None:
    group = _dan_group(lib)
    dan = faces_of(lib, "Dan")
    done = labelling.set_aside_faces(lib, dan[:2])
    assert done.faces == 2 and done.from_clusters == [group] and done.cluster_id != group
    assert {f.cluster_id for f in browse.get_faces(lib, dan[:2])} == {done.cluster_id}
    assert browse.get_cluster(lib, done.cluster_id).user_made
    assert browse.get_cluster(lib, group).size == FACES_EACH - 2
    assert f"from cluster {group}" in labelling.history(lib, 1)[0].description
    before = snapshot(lib)
    with pytest.raises(InvalidRequest, match="belongs to a person"):
        labelling.set_aside_faces(lib, [dan[2], faces_of(lib, "Ada")[0]])
    assert snapshot(lib) == before


def test_a_bad_request_changes_nothing(lib: Library) -> None:
    before = snapshot(lib)
    for call in (lambda: labelling.assign_faces(lib, faces_of(lib, "Dan")[:1], "   "),
                 lambda: labelling.assign_faces(lib, [987654], "Dan"),
                 lambda: labelling.assign_faces(lib, [True], "Dan"),  # type: ignore[list-item]
                 lambda: labelling.merge_people(lib, pid(lib, "Ada"), pid(lib, "Ada")),
                 lambda: labelling.remove_faces(lib, faces_of(lib, "Dan")[:1]),
                 lambda: labelling.split_faces(lib, faces_of(lib, "Ada")[:1]),
                 lambda: labelling.set_birth_date(lib, pid(lib, "Ada"), date(2999, 1, 1)),
                 lambda: labelling.rename_person(lib, pid(lib, "Ada"), "ben")):
        with pytest.raises((InvalidRequest, PersonNotFound, FaceNotFound)) as info:
            call()
        assert str(info.value) and "\n" not in str(info.value)
    assert snapshot(lib) == before


# --- suggestions -----------------------------------------------------------------------------------

def test_waiting_faces_are_suggested_as_the_person_they_are_drawn_from(lib: Library) -> None:
    waiting = {name: faces_of(lib, name)[CONFIRMED:] for name in ("Ada", "Ben", "Cleo")}
    got = sg.suggest_for_faces(lib, [f for fs in waiting.values() for f in fs], limit=2)
    for name, fids in waiting.items():
        assert all(got[f] and got[f][0].person_name == name for f in fids), name
    assert sg.suggest_for_faces(lib, faces_of(lib, "Dan"))[faces_of(lib, "Dan")[0]] == []  # nobody close
    items = sg.all_suggestions(lib)
    assert {(it.person_name, tuple(it.face_ids)) for it in items} == {(n, tuple(f)) for n, f in waiting.items()}


def test_a_rejected_person_is_never_suggested_again_and_the_index_stays_equal_to_a_fresh_one(lib: Library) -> None:
    ada_waiting = faces_of(lib, "Ada")[CONFIRMED:]
    sg.reject_suggestion(lib, ada_waiting[:1], pid(lib, "Ada"))
    assert all(s.person_name != "Ada" for s in sg.suggest_for_faces(lib, ada_waiting[:1])[ada_waiting[0]])
    item = sg.next_suggestion(lib)
    assert item is not None
    sg.accept_suggestion(lib, item.face_ids, item.person_id)
    labelling.undo(lib)
    index = sg.index_for(lib)
    with lib.session() as s:
        index.refresh(s)
        fresh = sg.SuggestionIndex()
        fresh.refresh(s)
    assert [(i.face_ids, i.person_id, i.distance) for i in index.items(set())] == \
           [(i.face_ids, i.person_id, i.distance) for i in fresh.items(set())]
    assert index.state == fresh.state and all(isinstance(st, FaceState) for st in index.state.values())


def test_face_person_distances_leave_out_rejected_people(lib: Library) -> None:
    ada = pid(lib, "Ada")
    face = faces_of(lib, "Ada")[-1]
    with lib.session() as s:
        ids, mat = neighbours.load_embeddings(s, [Face.id == face])
        before = neighbours.face_person_distances(s, ids, mat)
    assert min(before[face], key=before[face].get) == ada and before[face][ada] < neighbours.SUGGEST_MAX_DISTANCE
    sg.reject_suggestion(lib, [face], ada)
    with lib.session() as s:
        after = neighbours.face_person_distances(s, ids, mat)
    assert ada not in after.get(face, {})


# --- clustering's bookkeeping ---------------------------------------------------------------------

def test_face_state_compares_places_not_confidences() -> None:
    a = FaceState(3, Assignment.suggested, 7, 0.8)
    assert a.same_place(FaceState(3, Assignment.suggested, 7, 0.1)) and a.is_open and a.confirmed_for is None
    assert not a.same_place(FaceState(3, Assignment.auto, 7, 0.8))
    assert FaceState(3, Assignment.confirmed, None).confirmed_for == 3
    assert not FaceState(3, Assignment.auto, None).is_open


def _runs(lib: Library) -> int:
    with lib.session() as s:
        return s.scalar(select(func.count(ClusterRun.id))) or 0


def test_cluster_after_scan_runs_only_when_faces_changed(lib: Library) -> None:
    before, runs = snapshot(lib), _runs(lib)
    assert cluster_after_scan(lib, SimpleNamespace(faces_added=0, faces_removed=0)) is None  # type: ignore[arg-type]
    assert snapshot(lib) == before and _runs(lib) == runs
    for changed in (SimpleNamespace(faces_added=3, faces_removed=0), SimpleNamespace(faces_added=0, faces_removed=1)):
        report = cluster_after_scan(lib, changed)  # type: ignore[arg-type]
        assert report is not None and report.faces > 0
    assert _runs(lib) == runs + 2
    # the waiting faces of named people were given to them (auto), Dan's stay one group
    assert browse.count_person_faces(lib, pid(lib, "Ada")) == FACES_EACH
    assert len({f.cluster_id for f in browse.get_faces(lib, faces_of(lib, "Dan"))}) == 1


def test_a_generated_library_pages_and_names_people(tmp_path: Path) -> None:
    gen = generate_library(tmp_path / "gen.db", faces=300, seed=3)
    lib = Library.open(gen.url)
    try:
        people = browse.list_people(lib, include_hidden=True)
        assert len(people) == gen.people
        someone = people[0]
        assert browse.find_person(lib, someone.name.upper()).id == someone.id
        assert browse.find_person(lib, str(someone.id)).id == someone.id
        groups = browse.list_clusters(lib, limit=5)
        assert groups and browse.faces_in_cluster(lib, groups[0].id, limit=3)
        assert not hasattr(browse, "cluster_faces")  # one name per thing: grouping is clustering's
    finally:
        lib.close()
