"""Resemblance and look-alike search on real scanned LFW photos in real SQLite files.

One library is scanned per session (10 identities, deliberately unequal photo counts);
each test that changes people works on its own copy.
"""
from __future__ import annotations

import base64
import io
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from organizer import resemblance as R
from organizer.cli import main as cli_main
from organizer.db import Library
from organizer.errors import InvalidRequest, PersonNotFound, UnreadableImage
from organizer.models import Face, Person, Photo, embedding_from_bytes
from organizer.testing import label_by_folder

from .conftest import copy_db, db_url, photos_dir, scan_into

#: identity -> photos in the library (unequal on purpose)
CHOSEN = {
    "George_W_Bush": 20, "Tony_Blair": 12, "Gerhard_Schroeder": 12, "Hugo_Chavez": 8,
    "Jean_Chretien": 6, "Jacques_Chirac": 6, "Vladimir_Putin": 6, "Gloria_Macapagal_Arroyo": 6,
    "Jennifer_Capriati": 6, "Lleyton_Hewitt": 6,
}


@pytest.fixture(scope="session")
def res_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = photos_dir("lfw-dev")
    root = tmp_path_factory.mktemp("res_photos")
    for name, n in CHOSEN.items():
        (root / name).mkdir()
        for f in sorted((src / name).glob("*.jpg"))[:n]:
            shutil.copy2(f, root / name / f.name)
    db = tmp_path_factory.mktemp("res_db") / "library.db"
    lib = scan_into(db, root)
    label_by_folder(lib)
    lib.close()
    return db


@pytest.fixture()
def lib(res_db: Path, tmp_path: Path) -> Iterator[Library]:
    lib = Library.open(db_url(copy_db(res_db, tmp_path / "library.db")))
    yield lib
    lib.close()


def person_id(lib: Library, name: str) -> int:
    with lib.session() as s:
        return s.scalar(select(Person.id).where(Person.name == name))


def faces_of(lib: Library, name: str) -> list[int]:
    """In photo-path order: face ids follow the order parallel workers finished in, which
    changes from scan to scan, and the tests must pick the same faces every run."""
    with lib.session() as s:
        return list(s.scalars(select(Face.id).join(Person, Person.id == Face.person_id).join(Photo)
                              .where(Person.name == name).order_by(Photo.path, Face.id)))


def move_to_new_person(lib: Library, face_ids: list[int], name: str, birth: date | None = None) -> int:
    """Give these (confirmed) faces to a new person, as the user would by moving them."""
    with lib.session() as s:
        p = Person(name=name, birth_date=birth)
        s.add(p)
        s.flush()
        for f in s.scalars(select(Face).where(Face.id.in_(face_ids))):
            f.person_id = p.id
        return p.id


def split_off(lib: Library, name: str, new_name: str, count: int, birth: date | None = None) -> list[int]:
    """Move the first ``count`` faces of ``name`` to a new person ``new_name``."""
    moved = faces_of(lib, name)[:count]
    move_to_new_person(lib, moved, new_name, birth)
    return moved


def snapshot(lib: Library) -> str:
    """The whole database's content, to show that a refused request changed nothing."""
    path = lib.engine.url.database
    with sqlite3.connect(path) as conn:
        return "\n".join(conn.iterdump())


def lfw_file(name: str, index: int) -> Path:
    return photos_dir("lfw-dev") / name / f"{name}_{index:04d}.jpg"


# --- ranking, intervals, counts ------------------------------------------------------------


def test_self_ranks_far_above_unrelated_with_calibrated_scale(lib: Library) -> None:
    split_off(lib, "Tony_Blair", "Kid", 5)   # the "child" is 5 held-out photos of Tony Blair
    res = R.resemble(lib, "Kid", ["Gerhard_Schroeder", "Tony_Blair", "Hugo_Chavez", "Jean_Chretien"], rounds=400)
    ranked = [c.name for c in res.candidates]
    assert ranked[0] == "Tony_Blair"
    top, rest = res.candidates[0], res.candidates[1:]
    assert [c.rank for c in res.candidates] == [1, 2, 3, 4]
    assert top.score > 60 and top.percentile > 95
    assert all(top.low > c.high for c in rest), "self must be clearly separated, intervals included"
    assert top.p_best > 0.95 and "looks most like Tony_Blair" in res.verdict
    # unrelated people read as "no resemblance" on the calibrated scale
    assert all(-60 < c.score < 50 for c in rest)
    assert res.calibration.source == "library" and res.calibration.pairs >= 10
    for c in res.candidates:
        assert c.low <= c.score <= c.high
    scores = [c.score for c in res.candidates]
    assert scores == sorted(scores, reverse=True)


def test_unrelated_pairs_centre_on_no_resemblance(lib: Library) -> None:
    """Score every unrelated pair against a calibration that never saw the pair."""
    names = list(CHOSEN)
    scores, pct = [], []
    for i, child in enumerate(names):
        others = [n for n in names if n != child][i % 3::3][:3]
        res = R.resemble(lib, child, others, rounds=100, evidence=0)
        scores += [c.score for c in res.candidates]
        pct += [c.percentile for c in res.candidates]
    assert -25 < float(np.median(scores)) < 25
    assert 25 < float(np.median(pct)) < 75


def test_intervals_contain_the_score_and_shrink_with_more_photos(lib: Library) -> None:
    bush = faces_of(lib, "George_W_Bush")
    move_to_new_person(lib, bush[:3], "Kid few")
    move_to_new_person(lib, bush[3:], "Kid many")
    few = R.resemble(lib, "Kid few", ["Tony_Blair", "Hugo_Chavez"], rounds=600)
    many = R.resemble(lib, "Kid many", ["Tony_Blair", "Hugo_Chavez"], rounds=600)
    for res in (few, many):
        for c in res.candidates:
            assert c.low <= c.score <= c.high and c.high > c.low
    width = {r.child_name: {c.name: c.high - c.low for c in r.candidates} for r in (few, many)}
    for cand in ("Tony_Blair", "Hugo_Chavez"):
        assert width["Kid many"][cand] < width["Kid few"][cand]


def test_unequal_photo_counts_do_not_bias_the_statistic(lib: Library) -> None:
    """Our trimmed mean gives a candidate's 2 photos the same expected value as all its
    photos; the naive best-match (minimum distance) does not: the test can tell."""
    with lib.session() as s:
        vecs = {}
        for name in ("George_W_Bush", "Tony_Blair", "Gerhard_Schroeder", "Hugo_Chavez"):
            rows = s.scalars(select(Face.embedding).join(Person, Person.id == Face.person_id).where(Person.name == name))
            vecs[name] = np.array([embedding_from_bytes(b) for b in rows])
    rng = np.random.default_rng(0)
    ours, naive = [], []
    for child, cand in [("Tony_Blair", "George_W_Bush"), ("Gerhard_Schroeder", "George_W_Bush"),
                        ("Hugo_Chavez", "Tony_Blair"), ("Tony_Blair", "Gerhard_Schroeder")]:
        d = R.pair_distances(vecs[child], vecs[cand])
        full = float(R.trimmed_pair_mean(d, np.ones(d.shape[0]), np.ones(d.shape[1])))
        for _ in range(60):
            sub = rng.choice(d.shape[1], 2, replace=False)
            ours.append(float(R.trimmed_pair_mean(d[:, sub], np.ones(d.shape[0]), np.ones(2))) - full)
            naive.append(float(d[:, sub].min(1).mean() - d.min(1).mean()))
    assert abs(np.mean(ours)) < 0.01
    assert np.mean(naive) > 0.03           # best-match favours whoever has more photos
    assert abs(np.mean(naive)) > 4 * abs(np.mean(ours))


def test_unbalanced_candidates_rank_by_likeness_not_photo_count(lib: Library) -> None:
    # the same man as two candidates: one with 16 photos, one with 2. Neither is related
    # to the child, so neither may win clearly just because of its photo count.
    bush = faces_of(lib, "George_W_Bush")
    move_to_new_person(lib, bush[:16], "Bush many")
    move_to_new_person(lib, bush[16:18], "Bush few")
    for child in ("Tony_Blair", "Hugo_Chavez", "Gerhard_Schroeder"):
        res = R.resemble(lib, child, ["Bush many", "Bush few"], rounds=400)
        by = {c.name: c for c in res.candidates}
        assert by["Bush many"].low <= by["Bush few"].high and by["Bush few"].low <= by["Bush many"].high
        assert by["Bush many"].p_best < 0.95, "many photos alone must not make a decisive winner"
    # while a 2-photo true match still beats a 16-photo stranger
    split_off(lib, "Tony_Blair", "Blair few", 2)
    res = R.resemble(lib, "Tony_Blair", ["Bush many", "Blair few"], rounds=400)
    assert res.candidates[0].name == "Blair few"


def test_evidence_pairs_are_real_faces_of_the_right_people(lib: Library) -> None:
    res = R.resemble(lib, "Tony_Blair", ["George_W_Bush", "Jean_Chretien"], evidence=4, rounds=100)
    blair = person_id(lib, "Tony_Blair")
    with lib.session() as s:
        for c in res.candidates:
            assert len(c.evidence) == 4
            seen_child, seen_cand = set(), set()
            for e in c.evidence:
                child_face, cand_face = s.get(Face, e.child_face_id), s.get(Face, e.candidate_face_id)
                assert child_face.person.name == "Tony_Blair" and cand_face.person.name == c.name
                assert child_face.photo_id == e.child_photo_id and cand_face.photo_id == e.candidate_photo_id
                assert s.get(Photo, e.child_photo_id).path.startswith("Tony_Blair/")
                assert s.get(Photo, e.candidate_photo_id).path.startswith(f"{c.name}/")
                assert e.distance == pytest.approx(float(np.linalg.norm(child_face.vector - cand_face.vector)), abs=1e-4)
                seen_child.add(e.child_face_id)
                seen_cand.add(e.candidate_face_id)
            assert len(seen_child) == len(seen_cand) == 4
            dists = [e.distance for e in c.evidence]
            assert dists == sorted(dists)
            # the first pair is the closest pair there is
            child_vecs = [f.vector for f in s.scalars(select(Face).where(Face.person_id == blair))]
            cand_vecs = [f.vector for f in s.scalars(select(Face).where(Face.person_id == c.person_id))]
            assert dists[0] == pytest.approx(float(R.pair_distances(np.array(child_vecs), np.array(cand_vecs)).min()), abs=1e-4)


def test_profile_and_poor_faces_are_left_out(lib: Library) -> None:
    blair = faces_of(lib, "Tony_Blair")
    with lib.session() as s:
        bad = s.get(Face, blair[0])
        bad.quality = 0.05
        prof = s.get(Face, blair[1])
        marks = {k: [list(p) for p in v] for k, v in prof.landmarks.items()}
        marks["nose_bridge"][-1] = list(marks["left_eye"][0])   # nose on the eye: a profile view
        prof.landmarks = marks
    res = R.resemble(lib, "Tony_Blair", ["George_W_Bush"], evidence=20, rounds=100)
    c = res.candidates[0]
    assert c.child_faces == len(blair) - 2
    assert not {blair[0], blair[1]} & {e.child_face_id for e in c.evidence}


# --- age matching ----------------------------------------------------------------------------


def set_taken(lib: Library, face_ids: list[int], when: datetime, source: str = "exif") -> None:
    with lib.session() as s:
        for f in s.scalars(select(Face).where(Face.id.in_(face_ids))):
            f.photo.taken_at, f.photo.taken_at_source = when, source


def test_age_matching_compares_at_the_same_age(lib: Library) -> None:
    kid = split_off(lib, "Tony_Blair", "Kid", 6, birth=date(2010, 6, 1))
    set_taken(lib, kid[:3], datetime(2015, 7, 1))            # 5 years old
    set_taken(lib, kid[3:], datetime(2016, 8, 1))            # 6
    dad = faces_of(lib, "George_W_Bush")
    with lib.session() as s:
        s.get(Person, person_id(lib, "George_W_Bush")).birth_date = date(1980, 1, 1)
    young, mid, old = dad[:5], dad[5:10], dad[10:]
    set_taken(lib, young, datetime(1985, 6, 1))              # dad at 5: matches
    set_taken(lib, mid, datetime(1995, 6, 1))                # dad at 15: too old
    set_taken(lib, old, datetime(2016, 6, 1))                # dad at 36
    set_taken(lib, dad[-1:], datetime(1979, 6, 1))           # before birth: not an age at all
    grandpa = split_off(lib, "Gerhard_Schroeder", "Grandpa", 12, birth=date(1950, 1, 1))
    set_taken(lib, grandpa[:1], datetime(1956, 1, 1))        # one childhood photo only
    set_taken(lib, grandpa[1:], datetime(2010, 1, 1))

    res = R.resemble(lib, "Kid", ["George_W_Bush", "Grandpa", "Hugo_Chavez"], age_matched=True, evidence=10, rounds=200)
    by = {c.name: c for c in res.candidates}
    dad_c = by["George_W_Bush"]
    assert dad_c.age_matched and dad_c.note is None
    assert dad_c.candidate_faces == len(young) and dad_c.child_faces == 6
    assert {e.candidate_face_id for e in dad_c.evidence} <= set(young)
    for e in dad_c.evidence:
        assert 5 <= e.child_age <= 6.3 and 5.3 <= e.candidate_age <= 5.5
        assert abs(e.child_age - e.candidate_age) <= 2
    assert not by["Grandpa"].age_matched and "at all ages" in by["Grandpa"].note and "only 1 photo" in by["Grandpa"].note
    assert not by["Hugo_Chavez"].age_matched and "no birth date" in by["Hugo_Chavez"].note
    assert by["Grandpa"].candidate_faces == 12

    plain = R.resemble(lib, "Kid", ["George_W_Bush"], rounds=100, evidence=30)
    assert not plain.candidates[0].age_matched
    assert plain.candidates[0].candidate_faces == len(dad)
    assert {e.candidate_face_id for e in plain.candidates[0].evidence} - set(young)


def test_age_matching_without_child_birth_date_falls_back_with_note(lib: Library) -> None:
    res = R.resemble(lib, "Tony_Blair", ["George_W_Bush"], age_matched=True, rounds=100)
    c = res.candidates[0]
    assert not c.age_matched and "Tony_Blair has no birth date" in c.note


def test_age_matching_flags_file_dates(lib: Library) -> None:
    kid = split_off(lib, "Tony_Blair", "Kid", 4, birth=date(2010, 1, 1))
    set_taken(lib, kid, datetime(2015, 1, 1), source="file")
    dad = split_off(lib, "George_W_Bush", "Dad", 6, birth=date(1980, 1, 1))
    set_taken(lib, dad, datetime(1985, 1, 1))
    c = R.resemble(lib, "Kid", ["Dad"], age_matched=True, rounds=100).candidates[0]
    assert c.age_matched and "file times" in c.note


# --- bad input ---------------------------------------------------------------------------------


def test_bad_requests_give_a_clear_message_and_change_nothing(lib: Library, tmp_path: Path) -> None:
    with lib.session() as s:
        s.add(Person(name="Nobody"))
    before = snapshot(lib)
    with pytest.raises(PersonNotFound, match="Aunt Zelda"):
        R.resemble(lib, "Tony_Blair", ["Aunt Zelda"])
    with pytest.raises(PersonNotFound, match="Little Tim"):
        R.resemble(lib, "Little Tim", ["Tony_Blair"])
    with pytest.raises(InvalidRequest, match="themself"):
        R.resemble(lib, "Tony_Blair", ["George_W_Bush", "tony_blair"])
    with pytest.raises(InvalidRequest, match="Nobody has no faces"):
        R.resemble(lib, "Tony_Blair", ["Nobody"])
    with pytest.raises(InvalidRequest, match="Nobody has no faces"):
        R.resemble(lib, "Nobody", ["Tony_Blair"])
    with pytest.raises(InvalidRequest, match="at least one candidate"):
        R.resemble(lib, "Tony_Blair", [])
    blank = tmp_path / "wall.jpg"
    Image.new("RGB", (400, 300), (200, 190, 180)).save(blank)
    with pytest.raises(InvalidRequest, match="no face found in wall.jpg"):
        R.lookalike(lib, blank)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not a photo" * 50)
    with pytest.raises(UnreadableImage):
        R.lookalike(lib, junk)
    with pytest.raises(UnreadableImage):
        R.lookalike_bytes(lib, b"\xff\xd8\xff\xe0 truncated", name="broken.jpg")
    with pytest.raises(InvalidRequest, match="limit is 20 MB"):
        R.lookalike_bytes(lib, b"\0" * (R.MAX_UPLOAD_BYTES + 1), name="huge.jpg")
    assert snapshot(lib) == before


# --- look-alike ----------------------------------------------------------------------------------


def test_lookalike_finds_the_person_from_a_new_photo(lib: Library) -> None:
    photo = lfw_file("Tony_Blair", 40)             # not in the library (it holds 1-12)
    res = R.lookalike(lib, photo, top=3)
    assert len(res.faces) == 1 and res.people == len(CHOSEN)
    face = res.faces[0]
    assert not face.nobody_close
    assert face.matches[0].name == "Tony_Blair" and face.matches[0].distance < 0.6
    assert len({m.person_id for m in face.matches}) == 3
    assert [m.distance for m in face.matches] == sorted(m.distance for m in face.matches)
    with lib.session() as s:
        closest = s.get(Face, face.matches[0].face_id)
        assert closest.person.name == "Tony_Blair" and closest.photo_id == face.matches[0].photo_id
        all_blair = [f.vector for f in s.scalars(select(Face).where(Face.person_id == closest.person_id))]
    # it really is the closest of that person's faces
    from organizer import faces as face_api
    from organizer.imaging import open_image
    img = open_image(photo)
    vec = face_api.embed(img.pixels, face_api.detect(img.pixels))[0].embedding
    assert face.matches[0].distance == pytest.approx(float(face_api.distances(np.array(all_blair), vec).min()), abs=1e-4)
    top, right, bottom, left = face.box
    assert 0 <= left < right <= 150 and 0 <= top < bottom <= 150
    # the same face, with a threshold nobody can meet, is "unknown"
    strict = R.lookalike(lib, photo, threshold=0.05)
    assert strict.faces[0].nobody_close and strict.faces[0].matches[0].name == "Tony_Blair"


def test_lookalike_says_unknown_for_a_stranger(lib: Library) -> None:
    res = R.lookalike(lib, lfw_file("Cameron_Diaz", 1))
    face = res.faces[0]
    assert face.nobody_close and face.matches[0].distance > R.LOOKALIKE_THRESHOLD


def test_lookalike_bytes_matches_the_file(lib: Library) -> None:
    photo = lfw_file("Gerhard_Schroeder", 30)
    a = R.lookalike(lib, photo)
    b = R.lookalike_bytes(lib, photo.read_bytes(), name="upload.jpg")
    assert b.source == "upload.jpg"
    assert [m.face_id for m in a.faces[0].matches] == [m.face_id for m in b.faces[0].matches]


def test_lookalike_with_nobody_named(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "x").mkdir(parents=True)
    shutil.copy2(lfw_file("Tony_Blair", 1), root / "x" / "a.jpg")
    lib = scan_into(tmp_path / "lib.db", root)
    with pytest.raises(InvalidRequest, match="nobody is named"):
        R.lookalike(lib, lfw_file("Tony_Blair", 2))
    lib.close()


# --- front ends ------------------------------------------------------------------------------------


def test_cli_resemble_and_lookalike(lib: Library, capsys: pytest.CaptureFixture[str]) -> None:
    db = lib.engine.url.database
    assert cli_main(["resemble", "Tony_Blair", "--to", "George_W_Bush", "Hugo_Chavez", "--evidence", "2", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "who does Tony_Blair look like?" in out and "George_W_Bush" in out and "95% interval" in out
    assert out.count(" ~ face ") == 4
    assert cli_main(["lookalike", str(lfw_file("Tony_Blair", 40)), "--top", "2", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "Tony_Blair" in out and "distance" in out
    assert cli_main(["lookalike", str(lfw_file("Cameron_Diaz", 1)), "--db", db]) == 0
    assert "unknown - nobody close" in capsys.readouterr().out
    assert cli_main(["resemble", "Tony_Blair", "--to", "Tony_Blair", "--db", db]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "themself" in err
    assert cli_main(["resemble", "Tony_Blair", "--db", db]) == 2


def test_dashboard_page(lib: Library) -> None:
    pytest.importorskip("dash")
    from dashboard.pages import PAGES
    from dashboard.pages import resemblance as page

    assert "resemblance" in PAGES and page.PATH == "/resemblance"
    blair, bush = person_id(lib, "Tony_Blair"), person_id(lib, "George_W_Bush")
    chavez = person_id(lib, "Hugo_Chavez")
    out = page.compare(lib, blair, [bush, chavez], False)
    text = str(out.to_plotly_json())
    assert "resemblance-chart" in text and "/media/thumb/" in text
    graph = _find(out, "resemblance-chart")
    bar = graph.figure.data[0]
    assert list(bar.x) and len(bar.error_y.array) == 2 and all(v >= 0 for v in bar.error_y.array)
    assert "toast-error" in str(page.compare(lib, blair, [blair], False).to_plotly_json())
    assert "pick the child" in str(page.compare(lib, None, [bush], False).to_plotly_json())
    # layout with a query renders the result directly
    assert "resemblance-chart" in str(page.layout(lib, child=str(blair), to=f"{bush},{chavez}").to_plotly_json())
    # uploads
    good = "data:image/jpeg;base64," + base64.b64encode(lfw_file("Tony_Blair", 40).read_bytes()).decode()
    assert "Tony_Blair" in str(page.lookalike_upload(lib, good, "me.jpg").to_plotly_json())
    bad = "data:image/jpeg;base64," + base64.b64encode(b"nope" * 100).decode()
    assert "toast-error" in str(page.lookalike_upload(lib, bad, "x.jpg").to_plotly_json())
    huge = "data:image/jpeg;base64," + "A" * (28 * 2**20)
    assert "larger than 20 MB" in str(page.lookalike_upload(lib, huge, "big.jpg").to_plotly_json())
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), (90, 120, 200)).save(buf, "PNG")
    blank = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    assert "no face found" in str(page.lookalike_upload(lib, blank, "sky.png").to_plotly_json())


def _find(component, cid):  # type: ignore[no-untyped-def]
    if getattr(component, "id", None) == cid:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and hasattr(child, "to_plotly_json"):
            found = _find(child, cid)
            if found is not None:
                return found
    return None
