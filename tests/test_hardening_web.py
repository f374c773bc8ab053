"""The web server's second round of hardening (issue 11, items 5, 6, 7, 9, 10, 11, 15,
18): DNS rebinding (Host headers the server was not started for), empty passwords,
stale cached images, framing and MIME sniffing, links that lead out of the photo folder,
oversized / malformed request bodies and Origins, absurd page numbers, and file names
with ':' or a backslash. Real libraries (scanned from ../shared/photos), real HTTP on
127.0.0.1 where the answer depends on the server (a subprocess ``organizer dashboard``
or werkzeug's server in a thread), Flask's test client where it does not."""
from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from dash.development.base_component import Component
from PIL import Image
from sqlalchemy import select

from dashboard.app import (
    MAX_REQUEST_BYTES,
    SECURITY_HEADERS,
    HostPolicy,
    create_app,
    load_pages,
    render_page,
)
from organizer import browse, clustering, labelling, media
from organizer.db import Library
from organizer.errors import InvalidRequest
from organizer.media import PhotoNotFound, photo_file
from organizer.models import Face, Photo
from organizer.resemblance import MAX_UPLOAD_BYTES

from . import hardening_tools as ht
from .conftest import REPO, copy_db, db_url, photos_dir, scan_into


def raw(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict, bytes]:
    """One request to 127.0.0.1:``port`` with exactly these headers (Host included)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        if body or method == "POST":
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def operations(db: Path) -> list[tuple]:
    with sqlite3.connect(db, timeout=60) as c:
        return c.execute("SELECT id, undone FROM operations ORDER BY id").fetchall()


@pytest.fixture(scope="module")
def server(people_small_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`organizer dashboard` (default host 127.0.0.1) on a copy of people-small with one
    labelled face, so there is something to undo."""
    db = copy_db(people_small_db, tmp_path_factory.mktemp("web") / "library.db")
    lib = Library.open(db_url(db))
    with lib.session() as s:
        face = s.scalars(select(Face.id).order_by(Face.id)).first()
    assert face is not None
    labelling.assign_faces(lib, [face], "Rose")
    lib.close()
    with ht.DashboardServer(db) as srv:
        yield {"db": db, "server": srv, "port": srv.port, "client": ht.DashClient(srv.url)}


def _undo_body(client: ht.DashClient) -> bytes:
    dep = client.find("app-undo")
    outs = client.outputs_of(dep)
    return json.dumps({"output": dep["output"], "outputs": outs if dep["output"].startswith("..") else outs[0],
                       "inputs": [{"id": "app-undo", "property": "n_clicks", "value": 1}], "state": [],
                       "changedPropIds": ["app-undo.n_clicks"]}).encode()


# --- 5: DNS rebinding ---------------------------------------------------------------------------

FOREIGN_HOSTS = [
    "evil.example:{port}", "evil.example", "EVIL.example:{port}", "127.0.0.1.evil.example:{port}",
    "localhost.evil.example:{port}", "evil.example:{port}@127.0.0.1", "127.0.0.1:{port}@evil.example",
    "127.0.0.1:{other}", "localhost:{other}", "[::1]:{other}", "[::1", "::1", "127.0.0.1:{port}:1",
    "127.0.0.1:abc", "127.0.0.1:-1", "0.0.0.0:{port}", "", "127.0.0.2:{port}", "evil.example:{port}, 127.0.0.1:{port}",
]
OWN_HOSTS = ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}", "localhost.:{port}", "127.0.0.1"]


def test_only_the_hosts_the_server_was_started_for_are_answered(server: dict) -> None:
    port, db = server["port"], server["db"]
    fmt = {"port": port, "other": port + 1 if port < 65535 else port - 1}
    served = []
    for host in FOREIGN_HOSTS:
        for path in ("/", "/_dash-layout", "/_dash-dependencies", "/media/photo/1.jpg", "/media/thumb/1.jpg"):
            status, _, body = raw(port, "GET", path, {"Host": host.format(**fmt)})
            if status < 400 or status >= 500 or b"JFIF" in body:
                served.append((host, path, status))
    assert served == []
    for host in OWN_HOSTS:
        assert raw(port, "GET", "/media/thumb/1.jpg", {"Host": host.format(**fmt)})[0] == 200, host

    # the attack of the issue: a page on evil.example (resolving to 127.0.0.1) posts Undo
    body, before = _undo_body(server["client"]), operations(db)
    assert any(not undone for _, undone in before)
    for host in ("evil.example:{port}", "evil.example"):
        h = host.format(**fmt)
        status, _, _ = raw(port, "POST", "/_dash-update-component", {
            "Host": h, "Origin": f"http://{h}", "Content-Type": "application/json"}, body)
        assert status in (400, 403)
    assert operations(db) == before
    # the same body from the dashboard's own page does run (so the refusal above is the Host's)
    status, _, _ = raw(port, "POST", "/_dash-update-component", {
        "Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json"}, body)
    assert status == 200 and operations(db) != before


def test_the_host_policy_for_every_address_and_for_a_named_host() -> None:
    local = HostPolicy.for_server("127.0.0.1", 8050)
    assert local.allows("127.0.0.1:8050") and local.allows("localhost:8050") and local.allows("[::1]:8050")
    assert not local.allows("127.0.0.1:8051") and not local.allows("evil.example:8050")
    wide = HostPolicy.for_server("0.0.0.0", 8050)
    name = socket.gethostname()
    assert wide.allows(f"{name}:8050") and wide.allows(f"{name.upper()}:8050") and wide.allows("localhost:8050")
    assert not wide.allows("evil.example:8050") and not wide.allows("0.0.0.0:8050")
    named = HostPolicy.for_server("photos.invalid", 8050)  # .invalid never resolves
    assert named.allows("photos.invalid:8050") and named.allows("127.0.0.1:8050")
    assert not named.allows("evil.example:8050")
    v6 = HostPolicy.for_server("::1", 8050)
    assert v6.allows("[::1]:8050") and not v6.allows("::1")


def test_an_app_without_a_known_port_answers_loopback_names_on_its_real_port(people_small_lib: Library) -> None:
    """How the browser tests run it: create_app() served by werkzeug on a free port."""
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, create_app(people_small_lib).server, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        port = srv.server_port
        assert requests.get(f"http://127.0.0.1:{port}/_dash-layout", timeout=60).status_code == 200
        assert requests.get(f"http://localhost:{port}/_dash-layout", timeout=60).status_code == 200
        assert raw(port, "GET", "/", {"Host": f"evil.example:{port}"})[0] == 403
    finally:
        srv.shutdown()
        thread.join(timeout=30)


HOSTILE_ORIGINS = [
    "http://[::1", "http://[::1]:abc", "http://127.0.0.1:99999", "http://127.0.0.1:{port}@evil.example",
    "http://evil.example:{port}", "https://127.0.0.1:{port}", "ftp://127.0.0.1:{port}", "http://localhost:{port}",
    "http://127.0.0.1:{port}.evil.example", "http://%zz", "127.0.0.1:{port}", "http://", "http://:{port}",
    "http://127.0.0.1:{other}",
]


def test_a_foreign_or_unparsable_origin_is_refused_not_a_server_error(server: dict) -> None:
    port, db = server["port"], server["db"]
    fmt = {"port": port, "other": port + 1 if port < 65535 else port - 1}
    body, before = _undo_body(server["client"]), operations(db)
    answers = {}
    for origin in HOSTILE_ORIGINS:
        status, _, _ = raw(port, "POST", "/_dash-update-component", {
            "Host": f"127.0.0.1:{port}", "Origin": origin.format(**fmt), "Content-Type": "application/json"}, body)
        answers[origin] = status
    assert answers == {o: 403 for o in HOSTILE_ORIGINS}
    assert operations(db) == before


# --- 6: empty passwords ---------------------------------------------------------------------------

def test_an_empty_password_is_refused_not_taken_as_none(people_small_db: Path, tmp_path: Path) -> None:
    db = copy_db(people_small_db, tmp_path / "library.db")
    base = [sys.executable, "-m", "organizer.cli", "dashboard", "--db", str(db), "--port", str(ht.free_port())]
    env = {k: v for k, v in os.environ.items() if k != "ORGANIZER_PASSWORD"}
    cases = {
        "--password answered with an empty line": (["--password"], env, "\n"),
        "--password answered with spaces": (["--password"], env, "   \n"),
        "--password answered with end of input": (["--password"], env, ""),
        "--password ''": (["--password", ""], env, "\n"),
        "--password '  '": (["--password", "  "], env, ""),
        "--password= ": (["--password= "], env, ""),
        "ORGANIZER_PASSWORD=''": ([], {**env, "ORGANIZER_PASSWORD": ""}, ""),
        "ORGANIZER_PASSWORD=' '": ([], {**env, "ORGANIZER_PASSWORD": " "}, ""),
    }
    for label, (extra, e, stdin) in cases.items():
        # a new session has no terminal, so getpass reads the answer from stdin; a
        # dashboard that starts anyway never exits and runs into the timeout
        try:
            done = subprocess.run(base + extra, check=False, input=stdin, env=e, cwd=REPO, capture_output=True, text=True,
                                  timeout=120, start_new_session=True)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{label}: the dashboard started without a password")
        assert done.returncode == 2, (label, done.stderr)
        assert "http://" not in done.stdout and "Traceback" not in done.stderr, (label, done.stderr)
        last = done.stderr.strip().splitlines()[-1]
        assert "organizer dashboard: " in last and "is empty" in last, (label, done.stderr)
        if extra not in (["--password"], ["--password", ""]):  # (these ask; getpass adds its prompt and a warning)
            assert len(done.stderr.strip().splitlines()) == 1, (label, done.stderr)


def test_the_app_itself_refuses_an_empty_password(people_small_lib: Library) -> None:
    for empty in ("", "  ", "\n"):
        with pytest.raises(InvalidRequest):
            create_app(people_small_lib, password=empty)


# --- 7: images revalidate ------------------------------------------------------------------------

def _no_stale_cache(headers: dict | object) -> None:
    cc = headers["Cache-Control"]  # type: ignore[index]
    parts = {p.strip().split("=")[0]: p.strip() for p in cc.split(",")}
    assert "no-cache" in parts and "private" in parts, cc
    assert "max-age" not in parts or parts["max-age"] == "max-age=0", cc


def test_a_thumbnail_whose_face_changed_is_not_shown_from_the_cache(people_small_lib: Library) -> None:
    client = create_app(people_small_lib).server.test_client()
    with people_small_lib.session() as s:
        a, b = s.scalars(select(Face.id).order_by(Face.id).limit(2)).all()
    first = client.get(f"/media/thumb/{a}.jpg")
    assert first.status_code == 200 and first.headers["ETag"]
    _no_stale_cache(first.headers)
    assert client.get(f"/media/thumb/{a}.jpg", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    # face a's id now shows another face's crop (an id reused, or a face re-detected)
    with sqlite3.connect(str(people_small_lib.engine.url.database)) as c:
        crop = c.execute("SELECT jpeg FROM face_thumbs WHERE face_id = ?", (b,)).fetchone()[0]
        c.execute("UPDATE face_thumbs SET jpeg = ? WHERE face_id = ?", (crop, a))
    again = client.get(f"/media/thumb/{a}.jpg", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200 and again.data == crop and again.headers["ETag"] != first.headers["ETag"]
    # the same crop under two face ids is two different things to a cache
    assert again.headers["ETag"] != client.get(f"/media/thumb/{b}.jpg").headers["ETag"]


def _writable_root(lib: Library, tmp_path: Path) -> Path:
    root = lib.root
    assert root is not None
    work = tmp_path / "root"
    shutil.copytree(root, work, symlinks=True)
    lib.set_meta("root", str(work))
    return work


def test_a_photo_replaced_in_place_is_not_shown_from_the_cache(people_small_lib: Library, tmp_path: Path) -> None:
    root = _writable_root(people_small_lib, tmp_path)
    client = create_app(people_small_lib).server.test_client()
    with people_small_lib.session() as s:
        (p1, path1), (_, path2) = s.execute(select(Photo.id, Photo.path).order_by(Photo.id).limit(2)).all()
    first = client.get(f"/media/photo/{p1}.jpg?size=128")
    assert first.status_code == 200
    _no_stale_cache(first.headers)
    assert client.get(f"/media/photo/{p1}.jpg?size=128", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    # another photo copied over it, keeping the old file's mtime
    st = (root / path1).stat()
    shutil.copyfile(root / path2, root / path1)
    os.utime(root / path1, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = client.get(f"/media/photo/{p1}.jpg?size=128", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200 and again.data != first.data


# --- 9: framing and sniffing ----------------------------------------------------------------------

def test_every_response_forbids_framing_and_sniffing(people_small_lib: Library) -> None:
    open_client = create_app(people_small_lib).server.test_client()
    locked = create_app(people_small_lib, password="s3cret").server.test_client()
    thumb = open_client.get("/media/thumb/1.jpg")
    responses = {
        "page": open_client.get("/"), "layout": open_client.get("/_dash-layout"), "thumb": thumb,
        "304": open_client.get("/media/thumb/1.jpg", headers={"If-None-Match": thumb.headers["ETag"]}),
        "photo": open_client.get("/media/photo/1.jpg?size=64"), "404": open_client.get("/media/nothing"),
        "foreign host": open_client.get("/", headers={"Host": "evil.example"}),
        "foreign origin": open_client.post("/_dash-update-component", data="{}", content_type="application/json",
                                           headers={"Origin": "http://evil.example"}),
        "bad json": open_client.post("/_dash-update-component", data="{", content_type="application/json"),
        "401": locked.get("/"),
        "asset": open_client.get("/assets/" + next(p.name for p in (REPO / "dashboard" / "assets").iterdir())),
    }
    statuses = {k: r.status_code for k, r in responses.items()}
    assert statuses["page"] == 200 and statuses["304"] == 304 and statuses["401"] == 401, statuses
    for label, resp in responses.items():
        for name, value in SECURITY_HEADERS.items():
            assert resp.headers.get(name) == value, (label, name, dict(resp.headers))
    assert SECURITY_HEADERS["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]
    assert SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"


# --- 10 (serving side): links out of the photo folder ------------------------------------------------

def _add_photo(lib: Library, rel: str) -> int:
    with lib.session() as s:
        row = Photo(path=rel, size=1, mtime=0.0)
        s.add(row)
        s.flush()
        return row.id


def test_file_links_that_lead_out_of_the_photo_folder_are_not_served(people_small_lib: Library, tmp_path: Path) -> None:
    root = _writable_root(people_small_lib, tmp_path)
    outside = tmp_path / "private"
    outside.mkdir()
    some = next(p for p in sorted(root.rglob("*.jpg")) if p.is_file())
    shutil.copy(some, outside / "secret.jpg")
    (root / "inside-link.jpg").symlink_to(some)
    (root / "outside-link.jpg").symlink_to(outside / "secret.jpg")
    (root / "relative-out.jpg").symlink_to(os.path.relpath(outside / "secret.jpg", root))
    # a folder link (a second disk linked in) is followed, as the scan follows it; a file
    # link inside it must stay inside it
    (root / "second-disk").symlink_to(outside, target_is_directory=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(some, elsewhere / "other.jpg")
    (outside / "escape.jpg").symlink_to(elsewhere / "other.jpg")
    (root / "repointed.jpg").symlink_to(some)
    ids = {rel: _add_photo(people_small_lib, rel) for rel in
           ("inside-link.jpg", "outside-link.jpg", "relative-out.jpg", "second-disk/secret.jpg",
            "second-disk/escape.jpg", "repointed.jpg")}
    client = create_app(people_small_lib).server.test_client()

    def status(rel: str) -> int:
        return client.get(f"/media/photo/{ids[rel]}.jpg?size=64").status_code

    assert status("inside-link.jpg") == 200 and status("repointed.jpg") == 200
    assert status("second-disk/secret.jpg") == 200
    for rel in ("outside-link.jpg", "relative-out.jpg", "second-disk/escape.jpg"):
        assert status(rel) == 404, rel
        with pytest.raises(PhotoNotFound):
            photo_file(people_small_lib, ids[rel])
    # re-pointed outside after it was scanned (and served): no rescan needed to refuse it
    (root / "repointed.jpg").unlink()
    (root / "repointed.jpg").symlink_to(outside / "secret.jpg")
    assert status("repointed.jpg") == 404
    # the photo folder itself may be reached through a link
    (tmp_path / "root-link").symlink_to(root, target_is_directory=True)
    people_small_lib.set_meta("root", str(tmp_path / "root-link"))
    assert status("inside-link.jpg") == 200 and status("outside-link.jpg") == 404


# --- 11: request size, nesting, undecodable bodies ------------------------------------------------------

def test_a_body_larger_than_any_upload_is_413_before_it_is_read(server: dict) -> None:
    port, db = server["port"], server["db"]
    assert MAX_REQUEST_BYTES > MAX_UPLOAD_BYTES * 4 // 3  # a 20 MB upload as base64 still fits
    before = operations(db)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:  # announces 200 MB, sends a little: answered at once, nothing read or run
        conn.putrequest("POST", "/_dash-update-component")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(200 * 2**20))
        conn.endheaders(_undo_body(server["client"]))
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    # without a Content-Length (chunked), the limit holds while reading
    big = b'{"output": "' + b"x" * (MAX_REQUEST_BYTES + 2**20) + b'"}'
    r = requests.post(f"http://127.0.0.1:{port}/_dash-update-component", data=iter([big[i:i + 2**20] for i in
                      range(0, len(big), 2**20)]), headers={"Content-Type": "application/json"}, timeout=120)
    assert r.status_code == 413
    assert operations(db) == before
    # and the limit sits above the 20 MB upload: such a file reaches the page and gets its
    # message (here "not an image"), not a 413
    dep = server["client"].find("resemblance-upload", "contents")
    data = base64.b64encode(b"\0" * MAX_UPLOAD_BYTES).decode()
    resp = server["client"].call(dep, [f"data:image/jpeg;base64,{data}"], ["big.jpg"], ["resemblance-upload.contents"],
                                 timeout=300)
    assert resp.status_code == 200 and "toast-error" in resp.text


def test_malformed_callback_bodies_are_400_not_500(server: dict) -> None:
    port = server["port"]
    undo = json.loads(_undo_body(server["client"]))
    deep_value = {**undo, "inputs": [{"id": "app-undo", "property": "n_clicks", "value": json.loads("[" * 500 + "]" * 500)}]}
    bodies = {
        "deep array": b"[" * 100_000 + b"]" * 100_000,
        "deep object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "deep in output": b'{"output":' + b"[" * 5000 + b"]" * 5000 + b"}",
        "deep in inputs": json.dumps({**undo, "inputs": "X"}).encode().replace(b'"X"', b"[" * 50_000 + b"]" * 50_000),
        "not utf-8": b'{"output": "\xff\xfe"}',
        "latin-1 bytes": "{\"output\": \"Caf\xe9\"}".encode("latin-1"),
        "truncated": _undo_body(server["client"])[:-7],
        "empty": b"",
        "scalar": b"42", "string": b'"x"', "list": b"[]", "empty object": b"{}", "null": b"null",
        "output not a string": json.dumps({**undo, "output": 1}).encode(),
        "inputs not a list": json.dumps({**undo, "inputs": {"a": 1}}).encode(),
        "NaN": b'{"output": NaN}',
    }
    errors = {}
    for label, body in bodies.items():
        status, _, _ = raw(port, "POST", "/_dash-update-component",
                           {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}, body)
        if status >= 500 or status == 200:
            errors[label] = status
    # a deep but parsable value where a number belongs is not a server error either
    status, _, _ = raw(port, "POST", "/_dash-update-component",
                       {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}, json.dumps(deep_value).encode())
    if status >= 500:
        errors["deep value"] = status
    assert errors == {}
    assert requests.get(f"http://127.0.0.1:{port}/_dash-layout", timeout=60).status_code == 200  # still serving


# --- 15: page numbers and ids in URLs ---------------------------------------------------------------

HOSTILE_NUMBERS = ["99999999999999999999", str(2**63), str(2**62), "-1", "0", "1e3", "٣", "²", "9" * 5000, "abc", ""]
QUERY_KEYS = ["id", "page", "face", "cluster", "child", "to", "age", "q", "hidden", "person", "lib"]


def _ok(tree: object) -> bool:
    return isinstance(tree, Component) or tree is None


def test_no_url_parameter_makes_a_page_fail(people_small_lib: Library) -> None:
    lib = people_small_lib
    clustering.cluster_faces(lib)
    with lib.session() as s:
        faces = s.scalars(select(Face.id).order_by(Face.id)).all()
    labelling.assign_faces(lib, faces[:2], "Rose")
    pid = browse.find_person(lib, "Rose").id
    pages = load_pages()
    failures = []
    fixed = {"/person": f"id={pid}&", "/photo": "id=1&", "/review": "", "/resemblance": f"child={pid}&"}
    for page in pages:
        for key in QUERY_KEYS:
            for value in HOSTILE_NUMBERS:
                for prefix in {"", fixed.get(page.PATH, "")}:
                    search = f"?{prefix}{key}={requests.utils.quote(value)}"
                    try:
                        tree, _ = render_page(lib, pages, page.PATH, search)
                        assert _ok(tree)
                    except Exception as exc:  # noqa: BLE001 - every failure is collected and shown
                        failures.append(f"{page.PATH}{search[:80]}: {exc.__class__.__name__}: {str(exc)[:80]}")
    assert failures == [], f"{len(failures)} failures, e.g. {failures[:5]}"


def test_a_page_past_the_end_shows_the_last_page(people_small_lib: Library) -> None:
    lib = people_small_lib
    with lib.session() as s:
        faces = s.scalars(select(Face.id).order_by(Face.id)).all()
    labelling.assign_faces(lib, faces[:3], "Rose")
    pid = browse.find_person(lib, "Rose").id
    pages = load_pages()

    def text(tree: Component) -> str:
        return json.dumps(tree.to_plotly_json(), default=lambda o: o.to_plotly_json() if isinstance(o, Component) else str(o))

    for path, search in (("/person", f"?id={pid}&page=99999999999999999999"), ("/person", f"?id={pid}&page={2**62}"),
                         ("/unassigned", "?page=99999999999999999999"), ("/unassigned", f"?page={2**62}")):
        tree, _ = render_page(lib, pages, path, search)
        shown = text(tree)
        assert "/media/thumb/" in shown and "Cannot show" not in shown, (path, search)
    tree, _ = render_page(lib, pages, "/unassigned", "?page=-5")
    assert "page must be 1 or more" in text(tree)


def test_huge_pages_over_http_are_not_server_errors(server: dict) -> None:
    client = server["client"]
    dep = client.find("app-url", "pathname")
    for path, search in (("/person", "?id=1&page=99999999999999999999"), ("/unassigned", "?page=99999999999999999999"),
                         ("/unassigned", "?page=-99999999999999999999"), ("/review", "?page=99999999999999999999"),
                         ("/review", "?cluster=1&page=99999999999999999999"), ("/people", "?lib=x"),
                         ("/resemblance", "?child=99999999999999999999&to=99999999999999999999")):
        resp = client.call(dep, [path, search, ""], [], ["app-url.pathname"])
        assert resp.status_code == 200, (path, search, resp.status_code)


# --- 18: ':' and '\\' in file names ------------------------------------------------------------------

def test_photos_with_colons_and_backslashes_in_their_paths_are_served(tmp_path: Path) -> None:
    src = sorted(photos_dir("people-small/train").rglob("*.jpg"))[:3]
    root = tmp_path / "photos"
    (root / "2019:summer").mkdir(parents=True)
    Image.open(src[0]).save(root / "Screenshot from 2014-05-10 14:23:11.png")
    shutil.copy(src[1], root / "2019:summer" / "beach.jpg")
    shutil.copy(src[2], root / "a\\b.jpg")
    lib = scan_into(tmp_path / "library.db", root, workers=1)
    try:
        with lib.session() as s:
            rows = dict(s.execute(select(Photo.path, Photo.id)).all())
        assert set(rows) == {"Screenshot from 2014-05-10 14:23:11.png", "2019:summer/beach.jpg", "a\\b.jpg"}
        client = create_app(lib).server.test_client()
        for rel, pid in rows.items():
            assert photo_file(lib, pid) == (root / rel).resolve()
            r = client.get(f"/media/photo/{pid}.jpg?size=64")
            assert r.status_code == 200 and r.mimetype == "image/jpeg", rel
    finally:
        lib.close()


def test_on_windows_drives_and_backslash_steps_are_still_refused(tmp_path: Path) -> None:
    windows_only = ["C:/secret.jpg", "C:secret.jpg", "a\\..\\..\\secret.jpg", "\\\\server\\share\\x.jpg", "\\secret.jpg"]
    everywhere = ["", "/etc/passwd", "../x.jpg", "a/../../x.jpg", "a\0.jpg"]
    assert all(media._names_outside(rel, windows=True) for rel in windows_only + everywhere)
    assert not any(media._names_outside(rel, windows=False) for rel in windows_only)
    assert all(media._names_outside(rel, windows=False) for rel in everywhere)
    assert not media._names_outside("2019:summer/a\\b.jpg", windows=False)
    # on Linux/macOS such names are ordinary files inside the root
    assert media._inside(tmp_path, "C:secret.jpg") == tmp_path.resolve() / "C:secret.jpg"
