"""The CLI's side of labelling at a glance: `organizer review` answers batch questions
(y / n / the ids to leave out), refusals of two faces of one photo name `--force`, and
`organizer unassigned --stacks`. Synthetic libraries (no dlib, no photo set)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from organizer import cli, questions, stacks
from organizer.db import Library
from organizer.models import Assignment, Face, FaceRejection

from .test_questions import faces_in, lib, pid, template  # noqa: F401  (fixtures)


def url(lib: Library) -> str:  # noqa: F811
    return str(lib.engine.url)


def script(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Feed ``answers`` to input(); what was asked is collected."""
    asked: list[str] = []
    it: Iterator[str] = iter(answers)

    def fake(prompt: str = "") -> str:
        asked.append(prompt)
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None
    monkeypatch.setattr("builtins.input", fake)
    return asked


def state(lib: Library, face_ids: list[int]) -> dict[int, tuple[int | None, Assignment | None]]:  # noqa: F811
    with lib.session() as s:
        return {f.id: (f.person_id, f.assignment) for f in s.scalars(select(Face).where(Face.id.in_(face_ids)))}


def test_review_accepts_a_batch_leaving_out_the_typed_ids(lib: Library, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    first = questions.next_batch_question(lib)
    assert first is not None and len(first.face_ids) >= 3
    out_id = first.face_ids[-1]
    asked = script(monkeypatch, ["what?", str(out_id), "q"])
    assert cli.main(["review", "--db", url(lib)]) == 0
    text = capsys.readouterr().out
    assert f"Are these {len(first.face_ids)} faces {first.person_name}?" in text
    assert "give y, n, s, q or face ids" in text  # a bad answer is asked again, nothing done
    assert len(asked) == 3
    after = state(lib, first.face_ids)
    for fid in first.face_ids[:-1]:
        assert after[fid] == (first.person_id, Assignment.confirmed)
    assert after[out_id][1] != Assignment.confirmed
    with lib.session() as s:
        assert s.scalar(select(FaceRejection).where(FaceRejection.face_id == out_id,
                                                    FaceRejection.person_id == first.person_id)) is not None
    # one undo takes the whole batch back
    assert cli.main(["undo", "--db", url(lib)]) == 0
    assert all(a != Assignment.confirmed for _, a in state(lib, first.face_ids).values())


def test_review_no_rejects_the_whole_batch_and_ids_outside_it_are_refused(
        lib: Library, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    first = questions.next_batch_question(lib)
    assert first is not None
    stranger = max(faces_in(lib, "")) + 1000
    script(monkeypatch, [str(stranger), "n", "q"])
    assert cli.main(["review", "--db", url(lib)]) == 0
    assert "give y, n, s, q or face ids" in capsys.readouterr().out
    with lib.session() as s:
        rejected = set(s.scalars(select(FaceRejection.face_id).where(FaceRejection.person_id == first.person_id)))
    assert set(first.face_ids) <= rejected
    assert all(a != Assignment.confirmed for _, a in state(lib, first.face_ids).values())


def test_two_faces_of_one_photo_are_refused_in_one_line_naming_force(
        lib: Library, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    mirror = faces_in(lib, "group/mirror")
    assert len(mirror) == 2
    before = state(lib, mirror)
    assert cli.main(["assign", *map(str, mirror), "--to", "Cleo", "--db", url(lib)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "add --force" in err and "group/mirror.jpg" in err
    assert state(lib, mirror) == before
    assert cli.main(["assign", *map(str, mirror), "--to", "Cleo", "--force", "--db", url(lib)]) == 0
    assert {p for p, _ in state(lib, mirror).values()} == {pid(lib, "Cleo")}


def test_assign_with_left_out_remembers_not_this_person(lib: Library) -> None:  # noqa: F811
    dan = faces_in(lib, "Dan/")
    assert cli.main(["assign", *map(str, dan[:3]), "--to", "Dan", "--left-out", str(dan[3]),
                     "--db", url(lib)]) == 0
    with lib.session() as s:
        assert s.scalar(select(FaceRejection).where(FaceRejection.face_id == dan[3],
                                                    FaceRejection.person_id == pid(lib, "Dan"))) is not None


def test_unassigned_stacks_list_only_unassigned_faces(lib: Library, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert cli.main(["unassigned", "--stacks", "--db", url(lib)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("stack of ")]
    listed = [int(x) for ln in lines for x in ln.split(":", 1)[1].split()]
    assert listed, "the synthetic library has look-alike strays (Dan)"
    assert listed == [f for st in stacks.unassigned_stacks(lib) for f in st.face_ids]
    with lib.session() as s:
        owners = set(s.scalars(select(Face.assignment).where(Face.id.in_(listed))))
    assert owners <= {None, Assignment.suggested}


def test_keep_apart_is_remembered(lib: Library, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    # Dan's look-alike faces named as two people: "Same person?" is asked about them
    dan = faces_in(lib, "Dan/")
    assert cli.main(["assign", *map(str, dan[:2]), "--to", "Dan A", "--db", url(lib)]) == 0
    assert cli.main(["assign", *map(str, dan[2:]), "--to", "Dan B", "--db", url(lib)]) == 0
    pair = {pid(lib, "Dan A"), pid(lib, "Dan B")}

    def asked() -> bool:
        return any({q.person_a, q.person_b} == pair for q in questions.merge_questions(lib))
    assert asked()
    assert cli.main(["keep-apart", "Dan A", "dan b", "--db", url(lib)]) == 0
    assert "different people" in capsys.readouterr().out
    assert not asked()
    assert cli.main(["undo", "--db", url(lib)]) == 0
    assert asked()


def test_review_asks_same_person_after_the_batches(lib: Library, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    dan = faces_in(lib, "Dan/")
    assert cli.main(["assign", *map(str, dan[:2]), "--to", "Dan A", "--db", url(lib)]) == 0
    assert cli.main(["assign", *map(str, dan[2:]), "--to", "Dan B", "--db", url(lib)]) == 0
    asked: list[str] = []

    def answer(prompt: str = "") -> str:  # skip every batch, merge when asked "same person?"
        asked.append(prompt)
        if len(asked) > 50:
            raise EOFError
        return "m" if prompt.startswith("[m]erge") else "s"
    monkeypatch.setattr("builtins.input", answer)
    assert cli.main(["review", "--db", url(lib)]) == 0
    text = capsys.readouterr().out
    assert "Same person? Dan" in text and "no more questions" in text
    with lib.session() as s:
        owners = set(s.scalars(select(Face.person_id).where(Face.id.in_(dan))))
    assert len(owners) == 1
