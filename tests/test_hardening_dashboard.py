"""The dashboard under attack and under faults, over real HTTP on 127.0.0.1: hostile
paths on every file-serving route, oversized uploads, HTML/JS in names, unknown ids in
callbacks, the server killed in the middle of an action, the photo folder unplugged, and
no network access at all (the server and a scan run with every non-loopback connection
refused). Every request goes to 127.0.0.1 only, bounded in number and time."""
from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from organizer.testing import generate_library

from . import hardening_tools as ht
from .conftest import REPO, copy_db, photos_dir

GUARD = Path(__file__).resolve().parent / "netguard"
SECRET = "organizer-hardening-secret-7f3a9c"
HOSTILE_NAME = '<img src=x onerror="alert(1)"><script>alert(2)</script>javascript:alert(3)'


def guarded_env(log: Path) -> dict[str, str]:
    """Environment for a subprocess that may talk to 127.0.0.1 only (see netguard/)."""
    path = os.pathsep.join([str(GUARD), str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "ORGANIZER_NET_LOG": str(log), "ORGANIZER_WORKERS": "2"}


def snapshot(db: Path) -> tuple:
    """Everything a user action could change."""
    with sqlite3.connect(db, timeout=60) as c:
        return tuple(c.execute(q).fetchall() for q in (
            "SELECT id, person_id, assignment, cluster_id, is_face FROM faces ORDER BY id",
            "SELECT id, name, hidden, cover_face_id, birth_date FROM people ORDER BY id",
            "SELECT count(*) FROM operations", "SELECT count(*) FROM face_rejections",
            "SELECT id, path, status FROM photos ORDER BY id"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A library scanned by `organizer scan` and served by `organizer dashboard`, both run
    with the network guard; a secret file next to (outside) the photo folder."""
    base = tmp_path_factory.mktemp("site")
    root = base / "photos"
    shutil.copytree(photos_dir("people-small/train"), root)
    (base / "secret.txt").write_text(SECRET)
    log = base / "network.log"
    db = base / "library.db"
    env = guarded_env(log)
    scan = subprocess.run([sys.executable, "-m", "organizer.cli", "scan", str(root), "--db", str(db), "-q"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert scan.returncode == 0, scan.stderr
    cluster = subprocess.run([sys.executable, "-m", "organizer.cli", "cluster", "--db", str(db)],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert cluster.returncode == 0, cluster.stderr
    with ht.DashboardServer(db, env=env) as server:
        client = ht.DashClient(server.url)
        yield {"db": db, "root": root, "log": log, "server": server, "client": client, "base": base}


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET exactly ``path`` (no client-side normalising of ``..`` or ``//``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def file_routes() -> list[str]:
    """Every route of the app that takes a path-like variable, from the app's own URL map
    (so a route added later is covered too), as a template with {} for the variable."""
    from dashboard.app import create_app
    from organizer.db import Library

    lib = Library.open("sqlite://")
    app = create_app(lib)
    routes = []
    for rule in app.server.url_map.iter_rules():
        if rule.arguments and "GET" in (rule.methods or ()):
            routes.append(re.sub(r"<[^>]+>", "{}", rule.rule))
    lib.close()
    return sorted(set(routes))


TRAVERSALS = [
    "../../../../../../etc/passwd", "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/etc/passwd", "%2Fetc%2Fpasswd", "//etc/passwd", "....//....//....//etc/passwd", "..\\..\\..\\etc\\passwd",
    "..%5c..%5c..%5cetc%5cpasswd", "%252e%252e%252fetc%252fpasswd", "../secret.txt", "../../secret.txt",
    "..%2fsecret.txt", "../../../organizer/config.py", "../../dashboard/app.py", "-1", "0", "99999999999999999999",
    "1.jpg/../../../../etc/passwd", "%00", "1%00.jpg",
]


def _hostile_paths(routes: list[str]) -> list[tuple[str, str]]:
    """(route, path) with each traversal payload at each variable of each route (the
    other variables get a plausible value)."""
    out = []
    for route in routes:
        holes = route.count("{}")
        for i in range(holes):
            for payload in TRAVERSALS:
                values = ["dash"] * holes
                values[i] = payload
                out.append((route, route.replace("{}", "\0").replace("\0", "{}").format(*values)))
    return out


def _probe_paths(port: int) -> tuple[int, list[str], list[str]]:
    """Send every hostile path; returns (count, leaks, server errors)."""
    leaks, errors = [], []
    paths = _hostile_paths(file_routes())
    for route, path in paths:
        status, body = raw_get(port, path)
        if status >= 500:
            errors.append(f"{status} {path}")
        if b"root:x:0:" in body or SECRET.encode() in body or b"def default_db_url" in body or b"def create_app" in body:
            leaks.append(path)
        if "/media/" in route and status == 200 and b"_dash-config" not in body:
            # werkzeug merges "//", so such a URL reaches the app's page shell: fine; a file is not
            leaks.append(path)
    return len(paths), leaks, errors


def test_every_file_route_refuses_traversal_and_absolute_paths(site: dict) -> None:
    routes = file_routes()
    assert any("/media/photo/" in r for r in routes) and any("/media/thumb/" in r for r in routes)
    port = site["server"].port
    tried, leaks, errors = _probe_paths(port)
    print(f"\n{tried} hostile paths over {len(routes)} routes {routes}: {len(leaks)} served something, "
          f"{len(errors)} answered with a server error (no content)")
    assert leaks == []
    # the routes do serve their own files (the test would pass on a dead server otherwise)
    assert raw_get(port, "/media/thumb/1.jpg")[0] == 200
    assert raw_get(port, "/media/photo/1.jpg?size=64")[0] == 200


def test_photo_rows_pointing_outside_the_library_are_refused_over_http(site: dict) -> None:
    db = site["db"]
    with sqlite3.connect(db) as c:
        ids = []
        for bad in ("../secret.txt", "/etc/passwd", str(site["base"] / "secret.txt"), "sub/../../secret.txt"):
            cur = c.execute("INSERT INTO photos (path, size, mtime, status, scanned_at) VALUES (?, 0, 0, 'ok', '2020-01-01')",
                            (bad,))
            ids.append(cur.lastrowid)
    try:
        for pid in ids:
            status, body = raw_get(site["server"].port, f"/media/photo/{pid}.jpg")
            assert status == 404 and SECRET.encode() not in body and b"root:x" not in body
    finally:
        with sqlite3.connect(db) as c:
            c.executemany("DELETE FROM photos WHERE id = ?", [(i,) for i in ids])


def _toast(resp: requests.Response) -> tuple[str, str]:
    """(kind, text) of the toast a callback answered with ("" when none)."""
    if resp.status_code == 204:
        return "", ""
    data = resp.json()["response"]
    alert = data.get("app-alert", {}).get("children")
    text = json.dumps(alert)
    kind = "error" if "toast-error" in text else ("ok" if "toast-ok" in text else "")
    return kind, text



def _render(client: ht.DashClient, path: str, search: str = "") -> dict:
    dep = client.find("app-url", "pathname")
    resp = client.call(dep, [path, search, ""], [], ["app-url.pathname"])
    assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
    return resp.json()


def test_names_with_html_and_js_are_stored_and_shown_as_text(site: dict) -> None:
    client, db = site["client"], site["db"]
    with sqlite3.connect(db) as c:
        face = c.execute("SELECT id FROM faces WHERE person_id IS NULL ORDER BY id LIMIT 1").fetchone()[0]
    dep = client.find("unassigned-sel-assign")
    resp = client.call(dep, [1, 0, 0, 0], [{"selected": [face], "anchor": None}, HOSTILE_NAME],
                       ["unassigned-sel-assign.n_clicks"])
    kind, _ = _toast(resp)
    assert kind == "ok"
    with sqlite3.connect(db) as c:
        pid, name = c.execute("SELECT id, name FROM people WHERE name LIKE '%script%'").fetchone()
    assert name == " ".join(HOSTILE_NAME.split())  # stored as typed (whitespace tidied), not sanitised away
    shown = 0
    for path, search in (("/", ""), ("/people", ""), ("/person", f"?id={pid}"), ("/photo", f"?id=1&face={face}"),
                         ("/resemblance", ""), ("/unassigned", ""), ("/review", ""), ("/suggestions", "")):
        tree = _render(client, path, search)
        for comp in ht.walk_components(tree):
            props = comp["props"]
            assert not props.get("dangerously_allow_html"), (path, comp["type"])
            for key in ("srcDoc", "dangerouslySetInnerHTML"):
                assert key not in props, (path, comp["type"])
            href = str(props.get("href", ""))
            assert not href.lower().lstrip().startswith("javascript:"), (path, href)
            if any(isinstance(v, str) and "<script>" in v for v in props.values()):
                shown += 1
                assert comp["type"] not in ("Markdown", "Iframe"), (path, comp["type"])
    assert shown >= 2, "the hostile name should appear on the pages (as text)"
    # a name too long for the library is refused with a message
    resp = client.call(dep, [2, 0, 0, 0], [{"selected": [face], "anchor": None}, "x" * 5000],
                       ["unassigned-sel-assign.n_clicks"])
    assert _toast(resp)[0] == "error"


def _unknown_id_calls(client: ht.DashClient) -> list[tuple[str, dict, list, list, list[str]]]:
    """Callbacks fed ids that do not exist (or are not ids at all)."""
    calls = []
    assign = client.find("unassigned-sel-assign")
    for bad in ([987654321], [-5], [0], ["abc"], [None], ["1; DROP TABLE faces"], [[1]], [{"id": 1}],
                [10 ** 30], [1, 987654321]):
        calls.append(("assign " + repr(bad), assign, [1, 0, 0, 0], [{"selected": bad, "anchor": None}, "Mallory"],
                      ["unassigned-sel-assign.n_clicks"]))
    calls.append(("notface unknown", assign, [0, 0, 1, 0], [{"selected": [987654321], "anchor": None}, ""],
                  ["unassigned-sel-notface.n_clicks"]))
    calls.append(("selection not a dict", assign, [1, 0, 0, 0], ["garbage", "Mallory"], ["unassigned-sel-assign.n_clicks"]))
    review = client.find({"index": ["ALL"], "type": "review-name"})
    for cid in (987654321, -1, "x"):
        calls.append((f"name cluster {cid!r}", review,
                      [[({"index": cid, "type": "review-name"}, 1)], [({"index": cid, "type": "review-input"}, 0)], []],
                      [[({"index": cid, "type": "review-input"}, "Mallory")], [({"index": cid, "type": "review-input"}, {"index": cid, "type": "review-input"})]],
                      [json.dumps({"index": cid, "type": "review-name"}, separators=(",", ":")) + ".n_clicks"]))
    person = client.find("person-rename")
    for ctx_id in (987654321, None, "x"):
        calls.append((f"rename person {ctx_id!r}", person, [1, 0, 0, 0, 0], [ctx_id, "Mallory", ""], ["person-rename.n_clicks"]))
    merge = client.find("person-merge")
    calls.append(("merge unknown", merge, [1, 0], [987654321, "Nobody here"], ["person-merge.n_clicks"]))
    photo = client.find("photo-name")
    for face in (987654321, None, "x"):
        calls.append((f"photo name face {face!r}", photo, [1, 0], [face, "Mallory"], ["photo-name.n_clicks"]))
    sugg = client.find("suggestions-accept")
    for current in ({"face_ids": [987654321], "person_id": 1, "person_name": "x"},
                    {"face_ids": [1], "person_id": 987654321, "person_name": "x"},
                    {"face_ids": "1,2", "person_id": "x"}, None):
        calls.append((f"accept {current!r}", sugg, [1, 0, 0], [current, []], ["suggestions-accept.n_clicks"]))
    return calls


def _coercible_id_calls(client: ht.DashClient) -> list[tuple[str, dict, list, list, list[str]]]:
    """Ids that are not ids but that int() turns into one (2.5 -> 2, True -> 1)."""
    assign = client.find("unassigned-sel-assign")
    return [("assign " + repr(bad), assign, [1, 0, 0, 0], [{"selected": bad, "anchor": None}, "Mallory"],
             ["unassigned-sel-assign.n_clicks"]) for bad in ([2.5], [True], ["3"])]


def _send_bad_ids(client: ht.DashClient, calls: list | None = None) -> tuple[list[str], list[str]]:
    """Send every malformed-id callback; returns (accepted, server errors)."""
    accepted, errors = [], []
    for label, dep, inputs, state, changed in (calls if calls is not None else _unknown_id_calls(client)):
        try:
            resp = client.call(dep, inputs, state, changed, timeout=30)
        except requests.RequestException as exc:
            errors.append(f"{label}: {exc.__class__.__name__}")
            continue
        if resp.status_code >= 500:
            errors.append(f"{label}: HTTP {resp.status_code}")
        elif _toast(resp)[0] == "ok":
            accepted.append(label)
    return accepted, errors


def test_unknown_ids_in_callbacks_are_rejected_and_change_nothing(site: dict) -> None:
    client, db = site["client"], site["db"]
    before = snapshot(db)
    accepted, errors = _send_bad_ids(client)
    print(f"\n{len(_unknown_id_calls(client))} callbacks with unknown or malformed ids: {len(accepted)} accepted, "
          f"{len(errors)} answered with a server error instead of a message: {errors}")
    assert accepted == []
    assert snapshot(db) == before


def test_malformed_requests_get_a_message_not_a_server_error(site: dict) -> None:
    """Ids that are not ids ('abc', None, 10**30 in callbacks; past 64 bits in image URLs)
    get a message or a 404, never a server error; 2.5 / True / '3' are not taken as ids."""
    _, errors = _send_bad_ids(site["client"])
    _, _, path_errors = _probe_paths(site["server"].port)
    media_errors = [e for e in path_errors if "/media/" in e]
    # the coercion case changes the library: run it last, on the module's library
    accepted, more = _send_bad_ids(site["client"], _coercible_id_calls(site["client"]))
    assert errors == [] and media_errors == [] and more == [] and accepted == []


def test_oversized_and_hostile_uploads_to_lookalike(site: dict) -> None:
    client, db = site["client"], site["db"]
    before = snapshot(db)
    dep = client.find("resemblance-upload", "contents")
    big = base64.b64encode(os.urandom(21 * 2**20)).decode()
    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, "PNG")  # 900 MP in a few KB
    bomb = base64.b64encode(buf.getvalue()).decode()
    cases = {
        "oversized": (f"data:image/jpeg;base64,{big}", "big.jpg", "larger than"),
        "bomb": (f"data:image/png;base64,{bomb}", "bomb.png", "too large"),
        "not base64": ("data:image/jpeg;base64,@@@###", "x.jpg", "could not be read"),
        "not an image": ("data:image/jpeg;base64," + base64.b64encode(b"hello" * 100).decode(), "x.jpg", "not an image"),
        "hostile name": ("data:image/jpeg;base64," + base64.b64encode(b"hello").decode(), HOSTILE_NAME, ""),
    }
    for label, (contents, filename, words) in cases.items():
        t0 = time.monotonic()
        resp = client.call(dep, [contents], [filename], ["resemblance-upload.contents"], timeout=120)
        assert resp.status_code == 200, (label, resp.status_code)
        text = json.dumps(resp.json())
        assert "toast-error" in text and words in text, (label, text[:300])
        assert time.monotonic() - t0 < 60, label
        for comp in ht.walk_components(resp.json()):
            assert not comp["props"].get("dangerously_allow_html"), label
    assert snapshot(db) == before


def test_no_network_access_during_scan_and_dashboard(site: dict) -> None:
    """The scan (with worker processes) and the server ran with every non-loopback
    connection refused and logged; every page and image was served; nothing was tried."""
    client, port = site["client"], site["server"].port
    for path in ("/", "/review", "/suggestions", "/unassigned", "/person", "/photo", "/status", "/resemblance",
                 "/slideshow"):
        _render(client, path, "?id=1" if path in ("/person", "/photo") else "")
    for url in ("/", "/media/thumb/1.jpg", "/media/photo/1.jpg", "/_dash-layout", "/_dash-dependencies"):
        assert raw_get(port, url)[0] == 200, url
    log = site["log"]
    assert not log.exists() or log.read_text() == "", log.read_text()
    # the guard itself works (else this test could not fail)
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 80), timeout=2)"],
                           env=guarded_env(log), capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "blocked" in probe.stderr
    assert "192.0.2.1" in log.read_text()


# --- faults while the dashboard runs ---------------------------------------------------------

def test_photo_folder_unplugged_while_the_dashboard_shows_photos(site: dict) -> None:
    client, db, root, port = site["client"], site["db"], site["root"], site["server"].port
    before = snapshot(db)
    away = root.with_name("photos-unplugged")
    root.rename(away)
    try:
        status, _ = raw_get(port, "/media/photo/2.jpg?size=200")
        assert status == 404
        assert raw_get(port, "/media/thumb/2.jpg")[0] == 200  # faces stay browsable
        tree = json.dumps(_render(client, "/photo", "?id=2"))
        assert "photo-panel" in tree  # the page itself still works
        for path in ("/people", "/unassigned", "/status"):
            _render(client, path)
    finally:
        away.rename(root)
    assert snapshot(db) == before  # nothing forgotten
    assert raw_get(port, "/media/photo/2.jpg?size=200")[0] == 200


@pytest.fixture(scope="module")
def generated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("gen") / "big.db"
    generate_library(db, faces=20_000, seed=3)
    return db


def _action_state(db: Path, name: str, ids: list[int]) -> tuple[int, int, int]:
    """(faces given to ``name``, operations naming it, faces of ``ids`` still untouched)."""
    with sqlite3.connect(db, timeout=60) as c:
        given = c.execute("SELECT count(*) FROM faces f JOIN people p ON p.id = f.person_id WHERE p.name = ?",
                          (name,)).fetchone()[0]
        ops = c.execute("SELECT count(*) FROM operations WHERE description LIKE ?", (f"%{name}%",)).fetchone()[0]
        marks = ",".join("?" * len(ids))
        untouched = c.execute(f"SELECT count(*) FROM faces WHERE id IN ({marks}) AND assignment IS NOT 'confirmed'",
                              ids).fetchone()[0]
    return given, ops, untouched


def test_server_killed_mid_action_is_all_or_nothing(generated_db: Path, tmp_path: Path) -> None:
    db = copy_db(generated_db, tmp_path / "lib.db")
    with sqlite3.connect(db) as c:
        pool = [r[0] for r in c.execute("SELECT id FROM faces WHERE person_id IS NULL AND is_face = 1 ORDER BY id")]
    chunk = 700
    trials = [None, 0.15, 0.4, 0.6, 0.75, 0.85, 0.95]  # fraction of a full action's time; None = let it finish
    assert len(pool) >= chunk * len(trials)
    duration = None
    outcomes = []
    for k, frac in enumerate(trials):
        ids, name = pool[k * chunk:(k + 1) * chunk], f"Killed {k}"
        with ht.DashboardServer(db) as server:
            client = ht.DashClient(server.url)
            dep = client.find("unassigned-sel-assign")
            result: dict = {}

            def send() -> None:
                try:
                    result["resp"] = client.call(dep, [1, 0, 0, 0], [{"selected": ids, "anchor": None}, name],
                                                 ["unassigned-sel-assign.n_clicks"], timeout=120)
                except requests.RequestException as exc:
                    result["error"] = exc

            t0 = time.monotonic()
            sender = threading.Thread(target=send)
            sender.start()
            if frac is None:
                sender.join(150)
                duration = time.monotonic() - t0
                assert result["resp"].status_code == 200
            else:
                time.sleep(frac * (duration or 1.0))
                server.kill()
                sender.join(150)
        given, ops, untouched = _action_state(db, name, ids)
        outcome = "all" if (given, ops, untouched) == (chunk, 1, 0) else (
            "nothing" if (given, ops, untouched) == (0, 0, chunk) else f"HALF: {given} faces, {ops} ops")
        outcomes.append(outcome)
        assert ht.healthy(db)
    print(f"\nkill the server mid-action ({chunk} faces, {duration:.2f}s per action): {outcomes}")
    assert all(o in ("all", "nothing") for o in outcomes), outcomes
    assert "nothing" in outcomes, "no kill landed before the commit: the test did not test anything"


# --- load: users labelling while a scan writes -------------------------------------------------

def test_ten_users_label_while_a_scan_writes(lfw_root: Path, lfw_db: Path, tmp_path: Path) -> None:
    report = ht.run_load_test(lfw_root, lfw_db, tmp_path, users=10, actions_per_user=6, extra_photos=30)
    print("\n" + report.summary())
    assert report.scan_commits_during_load >= 1, "the scan should be writing while the users click"
    assert report.locked_errors == 0 and report.http_errors == 0 and report.failed_actions == []
    assert report.lost_actions == [] and report.scan_rc == 0
    assert report.actions == 60
