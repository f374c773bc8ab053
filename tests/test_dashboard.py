"""The dashboard without a browser: the page functions and actions the callbacks call,
the image routes (caching, path traversal), the password, the CLI command, and the pages
on a generated library. The browser flow is in test_dashboard_browser.py."""
from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import plotly
import pytest
from PIL import Image
from sqlalchemy import func, select

from dashboard import components as ui
from dashboard.app import create_app, load_pages, render_page, undo_label, undo_last
from dashboard.pages import PAGES, person, photo, review, status, suggestions, unassigned
from organizer import browse, clustering, labelling, questions, stacks
from organizer.db import Library
from organizer.media import PhotoNotFound, photo_file, render_photo
from organizer.models import Assignment, Face, FaceRejection, Operation, Photo
from organizer.testing import generate_library

MY_PAGES = ["people", "review", "suggestions", "unassigned", "person", "photo", "status"]


def to_json(component: object) -> str:
    return json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder)


def op_count(lib: Library) -> int:
    with lib.session() as s:
        return s.scalar(select(func.count()).select_from(Operation)) or 0


def faces_of(lib: Library, person_id: int) -> set[int]:
    with lib.session() as s:
        return set(s.scalars(select(Face.id).where(Face.person_id == person_id,
                                                   Face.assignment == Assignment.confirmed)))


@pytest.fixture()
def clustered(lfw_lib: Library) -> Library:
    clustering.cluster_faces(lfw_lib)
    return lfw_lib


def largest_cluster(lib: Library) -> browse.ClusterSummary:
    return browse.list_clusters(lib, limit=1)[0]


# --- pages and routing ------------------------------------------------------------------------

def test_every_listed_page_follows_the_contract_and_my_pages_are_listed() -> None:
    pages = load_pages()
    names = [p.__name__.rsplit(".", 1)[-1] for p in pages]
    assert names == PAGES
    for name in MY_PAGES:
        assert name in PAGES
    paths = [p.PATH for p in pages]
    assert len(paths) == len(set(paths)), "two pages claim the same PATH"


def test_every_page_renders_on_an_empty_library(tmp_path: Path) -> None:
    lib = Library.open(f"sqlite:///{tmp_path / 'empty.db'}")
    pages = load_pages(MY_PAGES)
    for page in pages:
        component, routed = render_page(lib, pages, page.PATH, "")
        assert routed is page
        to_json(component)  # serialisable, as Dash needs it
    assert "People" in to_json(render_page(lib, pages, "/", "")[0])
    assert "Page not found" in to_json(render_page(lib, pages, "/no-such-page", "")[0])


def test_pages_render_a_scanned_clustered_library(clustered: Library) -> None:
    pages = load_pages(MY_PAGES)
    c = largest_cluster(clustered)
    review_json = to_json(render_page(clustered, pages, "/review", "")[0])
    for fid in c.face_ids:  # the largest group's faces are on the first page of Review
        assert f"/media/thumb/{fid}.jpg" in review_json
    one = to_json(render_page(clustered, pages, "/review", f"?cluster={c.id}")[0])
    assert one.count("/media/thumb/") == c.size
    unassigned = to_json(render_page(clustered, pages, "/unassigned", "")[0])
    assert unassigned.count('"review-face"') == 0
    assert unassigned.count("unassigned-face") == browse.count_unassigned(clustered)
    _info, faces = browse.photo_faces(clustered, 1)
    photo_json = to_json(render_page(clustered, pages, "/photo", f"?id=1&face={faces[0].id}")[0])
    assert "/media/photo/1.jpg" in photo_json and "face-box" in photo_json and "Who is this?" in photo_json
    assert "cannot" not in to_json(render_page(clustered, pages, "/status", "")[0]).lower()


def test_bad_query_arguments_show_a_message_not_a_crash(clustered: Library) -> None:
    pages = load_pages(MY_PAGES)
    for path, search in [("/person", "?id=abc"), ("/person", "?id=999999"), ("/review", "?cluster=999999"),
                         ("/review", "?page=-1"), ("/photo", "?id=999999")]:
        text = to_json(render_page(clustered, pages, path, search)[0])
        assert "Cannot show this page" in text, (path, search)


def test_pagination_never_sends_more_than_a_page(clustered: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(review, "GROUPS_PER_PAGE", 2)
    total = browse.count_clusters(clustered)
    assert total > 2
    text = to_json(review.layout(clustered))
    assert text.count('"review-group-') == 2
    assert "Page 1 of" in text
    last = (total + 1) // 2
    text = to_json(review.layout(clustered, page=str(last)))
    assert text.count('"review-group-') == total - 2 * (last - 1)


# --- actions ------------------------------------------------------------------------------------

def test_name_group_names_every_face_and_existing_name_adds_to_that_person(clustered: Library) -> None:
    first, second = browse.list_clusters(clustered, limit=2)
    fb = review.name_group(clustered, first.id, "Ada Lovelace")
    assert fb.ok and "Ada Lovelace" in fb.message
    ada = browse.find_person(clustered, "Ada Lovelace")
    assert faces_of(clustered, ada.id) >= set(first.face_ids)
    fb = review.name_group(clustered, second.id, "  ada   LOVELACE ")  # same person, other spelling
    assert fb.ok
    assert browse.find_person(clustered, "Ada Lovelace").id == ada.id
    assert faces_of(clustered, ada.id) >= set(first.face_ids) | set(second.face_ids)
    assert len(browse.list_people(clustered)) == 1


def test_an_error_is_shown_and_changes_nothing(clustered: Library) -> None:
    c = largest_cluster(clustered)
    before = op_count(clustered)
    for fb in [review.name_group(clustered, c.id, "   "),
               review.name_group(clustered, 999999, "Bob"),
               ui.selection_action(clustered, "move", [], "Bob"),
               ui.selection_action(clustered, "move", c.face_ids[:1], ""),
               ui.selection_action(clustered, "remove", c.face_ids[:1]),  # belongs to nobody
               ui.selection_action(clustered, "cover", c.face_ids[:2], person_id=1)]:
        assert not fb.ok and fb.message
        alert, refresh = ui.respond(fb)
        assert refresh is ui.no_update and "toast-error" in to_json(alert)
    assert op_count(clustered) == before
    assert browse.list_people(clustered, include_hidden=True) == []
    assert browse.get_cluster(clustered, c.id).size == c.size


def test_selection_actions_go_through_the_library(clustered: Library) -> None:
    c = largest_cluster(clustered)
    a, b, d, e = c.face_ids[:4]
    fb = ui.selection_action(clustered, "setaside", [a])
    assert fb.ok
    assert browse.get_faces(clustered, [a])[0].cluster_id != c.id
    fb = ui.selection_action(clustered, "notface", [b])
    assert fb.ok
    with clustered.session() as s:
        assert s.get(Face, b).is_face is False
    fb = ui.selection_action(clustered, "move", [d], "Grace Hopper")
    grace = browse.find_person(clustered, "Grace Hopper")
    assert fb.ok and fb.link == ("Open Grace Hopper", f"/person?id={grace.id}")
    assert faces_of(clustered, grace.id) == {d}
    fb = ui.selection_action(clustered, "cover", [d], person_id=grace.id)
    assert fb.ok and browse.get_person(clustered, grace.id).cover_face_id == d
    fb = ui.selection_action(clustered, "remove", [d])
    assert fb.ok and faces_of(clustered, grace.id) == set()
    with clustered.session() as s:
        assert s.get(FaceRejection, (d, grace.id)) is not None
    fb = ui.selection_action(clustered, "split", [e])
    assert fb.ok and browse.get_faces(clustered, [e])[0].cluster_id not in (None, c.id)


def test_person_page_actions(clustered: Library) -> None:
    first, second = browse.list_clusters(clustered, limit=2)
    review.name_group(clustered, first.id, "Ada")
    review.name_group(clustered, second.id, "Bob")
    ada, bob = browse.find_person(clustered, "Ada"), browse.find_person(clustered, "Bob")

    assert person.rename(clustered, ada.id, "Ada Lovelace").ok
    assert browse.get_person(clustered, ada.id).name == "Ada Lovelace"
    fb = person.rename(clustered, ada.id, "Bob")
    assert not fb.ok and "merge" in fb.message
    assert browse.get_person(clustered, ada.id).name == "Ada Lovelace"

    fb = person.save_birth_date(clustered, ada.id, "31/12/1815")
    assert not fb.ok and "YYYY-MM-DD" in fb.message
    assert browse.get_person(clustered, ada.id).birth_date is None
    assert person.save_birth_date(clustered, ada.id, "1815-12-10").ok
    assert str(browse.get_person(clustered, ada.id).birth_date) == "1815-12-10"

    assert person.toggle_hidden(clustered, bob.id).ok
    assert [p.name for p in browse.list_people(clustered)] == ["Ada Lovelace"]
    assert person.toggle_hidden(clustered, bob.id).ok
    assert browse.get_person(clustered, bob.id).hidden is False

    fb = person.merge_into(clustered, bob.id, "Nobody Known")
    assert not fb.ok
    fb = person.merge_into(clustered, bob.id, "ada lovelace")
    assert fb.ok and fb.link == ("Open Ada Lovelace", f"/person?id={ada.id}")
    assert [p.name for p in browse.list_people(clustered, include_hidden=True)] == ["Ada Lovelace"]
    assert faces_of(clustered, ada.id) >= set(first.face_ids) | set(second.face_ids)
    page = to_json(person.layout(clustered, id=str(ada.id)))
    assert page.count('"person-face"') == browse.count_person_faces(clustered, ada.id)


def test_undo_is_one_call_and_reports_what_it_undid(clustered: Library) -> None:
    assert undo_label(clustered) == ("Nothing to undo", True)
    fb = undo_last(clustered)
    assert not fb.ok
    c = largest_cluster(clustered)
    review.name_group(clustered, c.id, "Ada")
    text, disabled = undo_label(clustered)
    assert not disabled and "Ada" in text
    fb = undo_last(clustered)
    assert fb.ok and "Ada" in fb.message
    assert browse.list_people(clustered, include_hidden=True) == []
    assert browse.get_cluster(clustered, c.id).size == c.size


def _name_all_but_the_largest(lib: Library) -> None:
    """Name every group after the folder most of its faces come from (what a user would
    do), leaving the largest group for the test; the leftover faces then get suggestions."""
    from collections import Counter

    for c in browse.list_clusters(lib, limit=100)[1:]:
        folders = Counter(f.photo_path.split("/")[0] for f in browse.faces_in_cluster(lib, c.id))
        labelling.name_cluster(lib, c.id, folders.most_common(1)[0][0].replace("_", " "))


def test_suggestions_accept_reject_skip(clustered: Library) -> None:
    _name_all_but_the_largest(clustered)
    item, remaining = suggestions.next_question(clustered, [])
    assert item is not None and remaining >= 3
    card = to_json(suggestions.render_question(clustered, item, remaining))
    assert item.person_name in card and all(f"/media/thumb/{i}.jpg" in card for i in item.face_ids[:8])

    fb, skipped = suggestions.answer(clustered, "accept", suggestions.current_of(item), [])
    assert fb is not None and fb.ok and skipped == []
    assert faces_of(clustered, item.person_id) >= set(item.face_ids)

    item2, _ = suggestions.next_question(clustered, [])
    assert item2 is not None and item2.face_ids != item.face_ids
    fb, skipped = suggestions.answer(clustered, "reject", suggestions.current_of(item2), [])
    assert fb is not None and fb.ok
    with clustered.session() as s:
        for fid in item2.face_ids:
            assert s.get(FaceRejection, (fid, item2.person_id)) is not None
            assert s.get(Face, fid).person_id != item2.person_id

    item3, _ = suggestions.next_question(clustered, [])
    assert item3 is not None
    before = op_count(clustered)
    fb, skipped = suggestions.answer(clustered, "skip", suggestions.current_of(item3), [])
    assert fb is None and skipped == item3.face_ids and op_count(clustered) == before
    item4, _ = suggestions.next_question(clustered, skipped)
    assert item4 is None or not set(item4.face_ids) & set(item3.face_ids)

    fb, _ = suggestions.answer(clustered, "accept", None, [])
    assert not fb.ok


def test_regroup_from_the_status_page(lfw_lib: Library) -> None:
    assert browse.count_clusters(lfw_lib) == 0
    fb = status.regroup(lfw_lib)
    assert fb.ok and browse.count_clusters(lfw_lib) > 0


def test_photo_page_fixes_the_clicked_face(clustered: Library) -> None:
    _info, faces = browse.photo_faces(clustered, 1)
    fid = faces[0].id
    fb = photo.fix_face(clustered, "name", fid, "Ada")
    assert fb.ok and browse.get_faces(clustered, [fid])[0].person_name == "Ada"
    page = to_json(photo.layout(clustered, id="1", face=str(fid)))
    assert "Not Ada" in page and "Ada" in page
    assert photo.fix_face(clustered, "remove", fid).ok
    assert browse.get_faces(clustered, [fid])[0].person_id is None
    assert photo.fix_face(clustered, "notface", fid).ok
    assert browse.photo_faces(clustered, 1)[1] == faces[1:]


def test_names_are_text_never_html(clustered: Library) -> None:
    evil = '<img src=x onerror="alert(1)"><b>Eve</b>'
    c = largest_cluster(clustered)
    assert review.name_group(clustered, c.id, evil).ok
    people = ui.person_card(browse.find_person(clustered, evil))
    # the name is a plain string child (React renders it as text), never markup
    name_div = people.children[1]
    assert name_div.children == evil
    text = to_json(render_page(clustered, load_pages(MY_PAGES), "/people", "")[0])
    assert "dangerously" not in text.lower() and '"type": "Markdown"' not in text


def test_autocomplete_offers_matching_existing_names(clustered: Library) -> None:
    first, second = browse.list_clusters(clustered, limit=2)
    review.name_group(clustered, first.id, "Ada Lovelace")
    review.name_group(clustered, second.id, "Alan Turing")
    labelling.set_hidden(clustered, browse.find_person(clustered, "Alan Turing").id, True)
    assert [o.value for o in ui.name_options(clustered, "a")] == ["Ada Lovelace", "Alan Turing"]
    assert [o.value for o in ui.name_options(clustered, "TUR")] == ["Alan Turing"]
    assert ui.name_options(clustered, "  ") == []


# --- images: caching and safety ----------------------------------------------------------------

def test_thumbnails_are_served_with_caching_headers(people_small_lib: Library) -> None:
    client = create_app(people_small_lib).server.test_client()
    with people_small_lib.session() as s:
        fid = s.scalar(select(Face.id))
    r = client.get(f"/media/thumb/{fid}.jpg")
    assert r.status_code == 200 and r.mimetype == "image/jpeg"
    assert r.data == browse.face_thumbnail(people_small_lib, fid)
    assert "no-cache" in r.headers["Cache-Control"] and r.headers["ETag"]  # kept, but always revalidated
    again = client.get(f"/media/thumb/{fid}.jpg", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert client.get("/media/thumb/999999.jpg").status_code == 404


def test_photos_are_served_by_id_resized_and_upright(people_small_lib: Library) -> None:
    client = create_app(people_small_lib).server.test_client()
    info, _ = browse.photo_faces(people_small_lib, 1)
    r = client.get("/media/photo/1.jpg?size=200")
    assert r.status_code == 200 and r.mimetype == "image/jpeg"
    img = Image.open(io.BytesIO(r.data))
    assert max(img.size) <= 200
    # upright: same orientation as the stored (EXIF-applied) width/height
    assert (img.width >= img.height) == (info.width >= info.height)
    assert client.get("/media/photo/1.jpg", headers={"If-None-Match": r.headers["ETag"]}).status_code == 200
    again = client.get("/media/photo/1.jpg?size=200", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    assert len(render_photo(people_small_lib, 1, 10_000).jpeg) > 0  # clamped, not refused


TRAVERSALS = [
    "/media/photo/..%2F..%2F..%2Fetc%2Fpasswd",
    "/media/photo/../../../../etc/passwd",
    "/media/photo/%2e%2e/%2e%2e/etc/passwd",
    "/media/photo/1.jpg/../../../etc/passwd",
    "/media/photo/-1.jpg",
    "/media/photo/etc/passwd",
    "/media/thumb/..%2F..%2Fetc%2Fpasswd",
    "/media/thumb/../../etc/passwd",
    "/media/thumb/1.jpg%00.png",
    "/media/",
    "/media/..%2F..%2Fetc%2Fpasswd",
    "/assets/..%2F..%2F..%2Fetc%2Fpasswd",
    "/assets/../../../etc/passwd",
    "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_path_traversal_gets_404(people_small_lib: Library, url: str) -> None:
    r = create_app(people_small_lib).server.test_client().get(url)
    assert r.status_code == 404, url
    assert b"root:" not in r.data


def test_photo_rows_pointing_outside_the_library_are_refused(people_small_lib: Library, tmp_path: Path) -> None:
    root = people_small_lib.root
    assert root is not None
    secret = root.parent / "secret-outside.jpg"
    if not secret.exists():  # the shared photo folder is read-only; use a copy of the library root
        work = tmp_path / "root"
        shutil.copytree(root, work)
        people_small_lib.set_meta("root", str(work))
        root = work
        secret = tmp_path / "secret-outside.jpg"
    shutil.copy(next(root.rglob("*.jpg")), secret)
    with people_small_lib.session() as s:
        rows = [Photo(path=p, size=1, mtime=0.0) for p in
                ["../secret-outside.jpg", str(secret), "a/../../secret-outside.jpg", "C:/secret.jpg",
                 "missing/file.jpg"]]
        s.add_all(rows)
        s.flush()
        ids = [r.id for r in rows]
    client = create_app(people_small_lib).server.test_client()
    for pid in ids:
        with pytest.raises(PhotoNotFound):
            photo_file(people_small_lib, pid)
        assert client.get(f"/media/photo/{pid}.jpg").status_code == 404
    good = photo_file(people_small_lib, 1)
    assert good.is_file() and good.resolve().is_relative_to(root.resolve())


def test_a_password_protects_every_route(people_small_lib: Library) -> None:
    client = create_app(people_small_lib, password="s3cret").server.test_client()
    for url in ["/", "/people", "/media/thumb/1.jpg", "/media/photo/1.jpg", "/_dash-layout"]:
        r = client.get(url)
        assert r.status_code == 401 and "Basic" in r.headers["WWW-Authenticate"], url
    bad = base64.b64encode(b"me:wrong").decode()
    assert client.get("/", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    good = base64.b64encode(b"me:s3cret").decode()
    assert client.get("/", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert client.get("/media/thumb/1.jpg", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert create_app(people_small_lib).server.test_client().get("/").status_code == 200


def test_other_sites_cannot_post_to_the_dashboard(people_small_lib: Library) -> None:
    client = create_app(people_small_lib).server.test_client()
    payload = {"output": "app-undo-label.children", "outputs": [], "inputs": [], "changedPropIds": []}
    r = client.post("/_dash-update-component", json=payload, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


# --- the command line --------------------------------------------------------------------------

def test_cli_dashboard_warns_off_localhost_and_passes_the_password(
        people_small_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dashboard.app as app_module
    from organizer.cli import main

    seen: dict = {}

    def fake_run(self, host=None, port=None, debug=None, **_kw):  # type: ignore[no-untyped-def]
        seen.update(host=host, port=port, server=self.server)

    monkeypatch.setattr(app_module.Dash, "run", fake_run)
    monkeypatch.setenv("ORGANIZER_PASSWORD", "from-env")
    assert main(["dashboard", "--db", str(people_small_db), "--host", "0.0.0.0", "--port", "8123"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "0.0.0.0" in err
    assert seen["host"] == "0.0.0.0" and seen["port"] == 8123
    assert seen["server"].test_client().get("/").status_code == 401  # the env password is on

    monkeypatch.delenv("ORGANIZER_PASSWORD")
    assert main(["dashboard", "--db", str(people_small_db)]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "http://127.0.0.1:8050/" in captured.out
    assert seen["host"] == "127.0.0.1" and seen["server"].test_client().get("/").status_code == 200
    assert main(["dashboard", "--db", str(people_small_db), "--port", "0"]) == 2


# --- scale --------------------------------------------------------------------------------------

def test_pages_stay_paged_on_a_generated_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = generate_library(tmp_path / "big.db", faces=3000, seed=1)
    lib = Library.open(gen.url)
    assert browse.count_unassigned(lib) == gen.unassigned and browse.count_clusters(lib) == gen.clusters
    pages = load_pages(MY_PAGES)
    monkeypatch.setattr(person, "FACES_PER_PAGE", 30)
    biggest = browse.list_people(lib)[0]
    assert biggest.face_count > 30
    text = to_json(render_page(lib, pages, "/person", f"?id={biggest.id}")[0])
    assert text.count("/media/thumb/") == person.FACES_PER_PAGE + 1  # a page of faces + the avatar
    text = to_json(render_page(lib, pages, "/unassigned", "")[0])
    assert text.count("/media/thumb/") == min(gen.unassigned, 150)
    text = to_json(render_page(lib, pages, "/status", "")[0])
    assert "could not be read" in text and "status-failures" in text
    assert gen.photos > 0 and photo_file is not None


# --- issue 13: batch questions, It's <name>, Same person?, Do it anyway, stacks -----------------

class _FlaskResponse:
    """A Flask test response with the requests-style methods DashClient reads."""

    def __init__(self, resp) -> None:  # type: ignore[no-untyped-def]
        self.status_code = resp.status_code
        self.text = resp.get_data(as_text=True)
        self._json = resp.get_json(silent=True)

    def json(self):  # type: ignore[no-untyped-def]
        return self._json


class _FlaskHTTP:
    """requests.Session's get/post over Flask's test client: callbacks run as the browser
    calls them, without a server."""

    def __init__(self, client) -> None:  # type: ignore[no-untyped-def]
        self.client = client

    def get(self, url: str, timeout: float | None = None) -> _FlaskResponse:
        return _FlaskResponse(self.client.get(url))

    def post(self, url: str, json: object = None, timeout: float | None = None) -> _FlaskResponse:
        return _FlaskResponse(self.client.post(url, json=json))


def callbacks(lib: Library):  # type: ignore[no-untyped-def]
    from .hardening_tools import DashClient

    return DashClient("", _FlaskHTTP(create_app(lib).server.test_client()))


def answered(resp) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == 200, resp.text[:300]
    return resp.json()["response"]


def pid(component_id: dict) -> str:
    """A pattern id as Dash names it in changedPropIds (keys sorted, no spaces)."""
    return json.dumps(component_id, separators=(",", ":"), sort_keys=True)


def ids_of(component: object, kind: str) -> list[dict]:
    """The pattern ids of type ``kind`` in a rendered layout, in page order."""
    found: list[dict] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            cid = node.get("id")
            if isinstance(cid, dict) and cid.get("type") == kind:
                found.append(cid)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(json.loads(to_json(component)))
    return found


def unassigned_ids(lib: Library) -> set[int]:
    from organizer.queries import live, unowned

    with lib.session() as s:
        return set(s.scalars(select(Face.id).where(live(), unowned())))


def two_faces_of_one_photo(lib: Library) -> tuple[int, int]:
    with lib.session() as s:
        photo = s.scalar(select(Face.photo_id).where(Face.is_face.is_(True)).group_by(Face.photo_id)
                         .having(func.count() > 1).order_by(Face.photo_id))
        a, b = list(s.scalars(select(Face.id).where(Face.photo_id == photo).order_by(Face.id)))[:2]
    return a, b


def test_batch_accept_confirms_the_ticked_remembers_the_unticked_and_undo_takes_all_back(clustered: Library) -> None:
    _name_all_but_the_largest(clustered)
    item = next(q for q in questions.batch_questions(clustered) if len(q.face_ids) >= 2)
    card = to_json(suggestions.render_question(clustered, item, 1))
    assert "Are these " in card and card.count('"suggestions-face"') == len(item.face_ids)
    assert card.count("ticked") >= len(item.face_ids) and "unticked" not in card  # every face ticked at first
    before_faces, before_ops = faces_of(clustered, item.person_id), op_count(clustered)
    left, ticked = item.face_ids[-1], item.face_ids[:-1]
    current = suggestions.current_of(item)
    assert current is not None
    current["left_out"] = [left]
    fb, skipped = suggestions.answer(clustered, "accept", current, [])
    assert fb is not None and fb.ok and "1 face not" in fb.message and skipped == []
    assert faces_of(clustered, item.person_id) == before_faces | set(ticked)
    with clustered.session() as s:
        assert s.get(FaceRejection, (left, item.person_id)) is not None
        assert s.get(Face, left).person_id != item.person_id
        for fid in ticked:
            assert s.get(FaceRejection, (fid, item.person_id)) is None
    assert op_count(clustered) == before_ops + 1  # one operation for the whole answer
    again = questions.next_batch_question(clustered, person_id=item.person_id)
    assert again is None or left not in again.face_ids  # never asked about them again

    fb = undo_last(clustered)
    assert fb.ok and "accepted" in fb.message
    assert faces_of(clustered, item.person_id) == before_faces
    with clustered.session() as s:
        assert s.get(FaceRejection, (left, item.person_id)) is None


def test_reject_all_and_accept_with_nothing_ticked_say_none_is_them(clustered: Library) -> None:
    _name_all_but_the_largest(clustered)
    first, second = [q for q in questions.batch_questions(clustered)][:2]
    for item, action, left_out in ((first, "reject", []), (second, "accept", second.face_ids)):
        before = faces_of(clustered, item.person_id)
        current = suggestions.current_of(item)
        assert current is not None
        current["left_out"] = list(left_out)
        fb, _ = suggestions.answer(clustered, action, current, [])
        assert fb is not None and fb.ok and fb.message.startswith("No:"), action
        assert faces_of(clustered, item.person_id) == before
        with clustered.session() as s:
            assert all(s.get(FaceRejection, (f, item.person_id)) is not None for f in item.face_ids)


def test_the_answer_callback_reads_the_unticked_faces_from_the_store(clustered: Library) -> None:
    _name_all_but_the_largest(clustered)
    item = next(q for q in questions.batch_questions(clustered) if len(q.face_ids) >= 2)
    client = callbacks(clustered)
    dep = client.find("suggestions-accept")
    current = {**(suggestions.current_of(item) or {}), "left_out": [item.face_ids[0]]}
    got = answered(client.call(dep, [1, 0, 0], [current, []], ["suggestions-accept.n_clicks"]))
    assert "Yes:" in json.dumps(got["suggestions-last"])
    assert faces_of(clustered, item.person_id) >= set(item.face_ids[1:])
    assert item.face_ids[0] not in faces_of(clustered, item.person_id)
    following = got["suggestions-current"]["data"]  # the next question, shown at once
    assert following is None or not set(following["face_ids"]) & set(item.face_ids[1:])
    assert "suggestions-card" in got and got["suggestions-confirm"]["children"] is None


def test_a_second_group_of_a_named_person_is_offered_as_them_and_one_click_names_it(
        clustered: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    c = largest_cluster(clustered)
    half = c.face_ids[: len(c.face_ids) // 2]
    second = labelling.split_faces(clustered, half)
    assert review.name_group(clustered, c.id, "Ada Lovelace").ok
    ada = browse.find_person(clustered, "Ada Lovelace").id
    monkeypatch.setattr(review, "GROUPS_PER_PAGE", 100)  # the split-off group is small: on page 1 here
    page = review.layout(clustered)
    assert "It's Ada Lovelace" in to_json(page)
    button = {"index": second, "person": ada, "type": "review-accept"}
    assert ids_of(page, "review-accept") == [button]  # the only group near a named person
    assert ids_of(review.layout(clustered, cluster=str(second)), "review-accept") == [button]
    client = callbacks(clustered)
    dep = client.find({"index": ["ALL"], "person": ["ALL"], "type": "review-accept"})
    got = answered(client.call(dep, [[], [], [(button, 1)]], [[], []], [pid(button) + ".n_clicks"]))
    assert "toast-ok" in json.dumps(got["app-alert"]) and "Ada Lovelace" in json.dumps(got["app-alert"])
    assert faces_of(clustered, ada) >= set(c.face_ids)
    assert "It's Ada Lovelace" not in to_json(review.layout(clustered))


def test_same_person_is_asked_with_both_names_merge_or_different_remembered(clustered: Library) -> None:
    c = largest_cluster(clustered)
    second = labelling.split_faces(clustered, c.face_ids[: len(c.face_ids) // 2])
    assert review.name_group(clustered, c.id, "Ada A").ok and review.name_group(clustered, second, "Ada B").ok
    a, b = browse.find_person(clustered, "Ada A").id, browse.find_person(clustered, "Ada B").id
    assert "review-merges-load" in to_json(review.layout(clustered))  # filled in after the page shows
    client = callbacks(clustered)
    load = client.find("review-merges-load", "data")
    page = json.dumps(answered(client.call(load, [True], [], ["review-merges-load.data"]))["review-merges"])
    assert "Same person?" in page and "Ada A" in page and "Ada B" in page and "Different people" in page
    pair = {"index": f"{min(a, b)}:{max(a, b)}", "type": "review-apart"}
    apart = client.find({"index": ["ALL"], "type": "review-apart"})
    got = answered(client.call(apart, [[], [(pair, 1)]], [[]], [pid(pair) + ".n_clicks"]))
    assert "toast-ok" in json.dumps(got["app-alert"]) and "different" in json.dumps(got["app-alert"])
    assert review.merge_cards(clustered) == []  # remembered
    assert undo_last(clustered).ok
    assert "Same person?" in to_json(review.merge_cards(clustered))
    _source, target = review.merge_direction(clustered, a, b)
    merge = {"index": pair["index"], "type": "review-merge"}
    got = answered(client.call(client.find({"index": ["ALL"], "type": "review-merge"}), [[(merge, 1)], []],
                               [[(merge, merge)]], [pid(merge) + ".n_clicks"]))
    assert "toast-ok" in json.dumps(got["app-alert"]) and "Merged" in json.dumps(got["app-alert"])
    assert [p.name for p in browse.list_people(clustered, include_hidden=True)] in (["Ada A"], ["Ada B"])
    assert faces_of(clustered, int(str(target))) >= set(c.face_ids)


def test_a_same_photo_refusal_asks_and_do_it_anyway_forces_it(clustered: Library) -> None:
    f1, f2 = two_faces_of_one_photo(clustered)
    client = callbacks(clustered)
    key = f1
    name_btn, box = {"index": key, "type": "stack-name"}, {"index": key, "type": "stack-input"}
    store = {"index": key, "type": "stack-faces"}
    dep = client.find({"index": ["ALL"], "type": "stack-name"})
    got = answered(client.call(dep, [[(name_btn, 1)], [(box, 0)]],
                               [[(box, "Ada")], [(box, box)], [(store, [f1, f2])], [(store, store)],
                                {"selected": [], "anchor": None}], [pid(name_btn) + ".n_clicks"]))
    confirm = json.dumps(got["unassigned-confirm"])
    assert "Do it anyway" in confirm and "two faces in one photo" in confirm and "app-alert" not in got
    assert browse.list_people(clustered, include_hidden=True) == []  # nothing changed yet
    pending = got["unassigned-pending"]["data"]
    force = client.find("unassigned-force")
    cancelled = answered(client.call(force, [0, 1], [pending], ["unassigned-force-cancel.n_clicks"]))
    assert cancelled["unassigned-confirm"]["children"] is None
    assert browse.list_people(clustered, include_hidden=True) == []
    done = answered(client.call(force, [1, 0], [pending], ["unassigned-force.n_clicks"]))
    assert "toast-ok" in json.dumps(done["app-alert"]) and done["unassigned-confirm"]["children"] is None
    assert faces_of(clustered, browse.find_person(clustered, "Ada").id) == {f1, f2}


def test_suggestions_and_review_ask_before_two_faces_of_one_photo(clustered: Library) -> None:
    f1, f2 = two_faces_of_one_photo(clustered)
    ada = labelling.assign_faces(clustered, [f1], "Ada")
    # Suggestions: an accept the library refuses (the question was built before f1 was Ada's)
    current = {"face_ids": [f2], "person_id": ada, "person_name": "Ada", "left_out": []}
    fb, _ = suggestions.answer(clustered, "accept", current, [])
    assert fb is not None and not fb.ok and fb.needs_force and faces_of(clustered, ada) == {f1}
    client = callbacks(clustered)
    got = answered(client.call(client.find("suggestions-accept"), [1, 0, 0], [current, []],
                               ["suggestions-accept.n_clicks"]))
    assert "Do it anyway" in json.dumps(got["suggestions-confirm"]) and faces_of(clustered, ada) == {f1}
    got = answered(client.call(client.find("suggestions-force"), [1, 0], [current, []],
                               ["suggestions-force.n_clicks"]))
    assert faces_of(clustered, ada) == {f1, f2} and got["suggestions-confirm"]["children"] is None
    assert labelling.undo(clustered)
    # Review: naming a group that holds the photo's other face
    group = labelling.split_faces(clustered, [f2])
    fb = review.name_group(clustered, group, "Ada")
    assert not fb.ok and fb.needs_force
    asked = {"kind": "name", "cluster_id": group, "name": "Ada"}
    _toast, refresh, box, pending = ui.respond_or_ask("review", fb, asked)
    assert refresh is ui.no_update and "Do it anyway" in to_json(box) and pending is not None
    assert review.retry(clustered, pending).ok and faces_of(clustered, ada) == {f1, f2}


def test_unassigned_shows_only_unassigned_faces_in_stacks_biggest_first(clustered: Library) -> None:
    first = largest_cluster(clustered)
    review.name_group(clustered, first.id, "Ada")
    everyone = unassigned_ids(clustered)
    every = stacks.every_stack(clustered)
    assert [st.size for st in every] == sorted((st.size for st in every), reverse=True)
    assert sorted(f for st in every for f in st.face_ids) == sorted(everyone)  # each unassigned face once
    page = unassigned.layout(clustered)
    tiles = [i["index"] for i in ids_of(page, "unassigned-face")]
    assert sorted(tiles) == sorted(everyone)  # each once, and only the unassigned
    assert not set(tiles) & faces_of(clustered, browse.find_person(clustered, "Ada").id)
    assert len(ids_of(page, "stack-name")) == sum(1 for st in every if st.size > 1)
    assert tiles[:every[0].size] == every[0].face_ids  # the biggest stack first

    # a stack named in one action, one face clicked away ("not all the same")
    stack = next(st for st in every if st.size >= 3)
    left = stack.face_ids[-1]
    fb = unassigned.name_stack(clustered, list(stack.face_ids), [left], "Grace Hopper")
    assert fb.ok and "1 face left out" in fb.message
    grace = browse.find_person(clustered, "Grace Hopper").id
    assert faces_of(clustered, grace) == set(stack.face_ids) - {left}
    with clustered.session() as s:
        assert s.get(FaceRejection, (left, grace)) is not None
    assert unassigned_ids(clustered) == everyone - (set(stack.face_ids) - {left})
    tiles = {i["index"] for i in ids_of(unassigned.layout(clustered), "unassigned-face")}
    assert tiles == unassigned_ids(clustered) and left in tiles


def test_unassigned_pages_split_the_stacks_without_losing_a_face(clustered: Library) -> None:
    every = stacks.every_stack(clustered)
    total = sum(st.size for st in every)
    seen: list[int] = []
    for page in range(1, -(-total // 7) + 1):
        pieces = unassigned.page_pieces(every, page, per_page=7)
        assert sum(len(p.face_ids) for p in pieces) == min(7, total - 7 * (page - 1))
        for p in pieces:
            assert p.before + len(p.face_ids) + p.after == p.stack.size
        seen += [f for p in pieces for f in p.face_ids]
    assert seen == [f for st in every for f in st.face_ids]


def test_photo_and_person_pages_ask_before_two_faces_of_one_photo(clustered: Library) -> None:
    f1, f2 = two_faces_of_one_photo(clustered)
    ada = labelling.assign_faces(clustered, [f1], "Ada")
    client = callbacks(clustered)
    # Photo view: naming the photo's other face Ada asks first, "Do it anyway" does it
    with clustered.session() as s:
        photo_id = s.scalar(select(Face.photo_id).where(Face.id == f2))
    assert "photo-confirm" in to_json(photo.layout(clustered, id=str(photo_id), face=str(f2)))
    got = answered(client.call(client.find("photo-name"), [1, 0], [f2, "Ada"], ["photo-name.n_clicks"]))
    assert "Do it anyway" in json.dumps(got["photo-confirm"]) and faces_of(clustered, ada) == {f1}
    done = answered(client.call(client.find("photo-force"), [1, 0], [got["photo-pending"]["data"]],
                                ["photo-force.n_clicks"]))
    assert "toast-ok" in json.dumps(done["app-alert"]) and faces_of(clustered, ada) == {f1, f2}
    assert labelling.undo(clustered)
    # Person page: merging someone who shares a photo with Ada asks first
    labelling.assign_faces(clustered, [f2], "Bea")
    bea = browse.find_person(clustered, "Bea").id
    got = answered(client.call(client.find("person-merge"), [1, 0], [bea, "Ada"], ["person-merge.n_clicks"]))
    assert "Do it anyway" in json.dumps(got["person-confirm"])
    assert {p.name for p in browse.list_people(clustered, include_hidden=True)} == {"Ada", "Bea"}
    done = answered(client.call(client.find("person-force"), [1, 0], [got["person-pending"]["data"]],
                                ["person-force.n_clicks"]))
    assert "Merged Bea into Ada" in json.dumps(done["app-alert"]) and faces_of(clustered, ada) == {f1, f2}
