"""Helpers shared by the hardening tests (tests/test_hardening_*.py) and the longer
scripts in tests/stress/: kill campaigns against the scanner, library fingerprints, and
a minimal client for Dash callbacks. Not a test module (no ``test_`` prefix)."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FaceKey = tuple[str, int, int, int, int]  # photo path, top, right, bottom, left


# --- library fingerprints (read with plain sqlite3: no ORM, no migrations) -----------------

def _query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db, timeout=60) as c:
        return c.execute(sql, args).fetchall()


def face_keys(db: Path) -> Counter[FaceKey]:
    """Every face as (photo path, box), with multiplicity (a duplicate shows as count 2)."""
    return Counter(_query(db, "SELECT p.path, f.top, f.right, f.bottom, f.left FROM faces f JOIN photos p ON p.id = f.photo_id"))


def labels(db: Path) -> dict[FaceKey, tuple[str, str]]:
    """(photo path, box) -> (person name, assignment) for every labelled face."""
    rows = _query(db, "SELECT p.path, f.top, f.right, f.bottom, f.left, pe.name, f.assignment FROM faces f "
                      "JOIN photos p ON p.id = f.photo_id JOIN people pe ON pe.id = f.person_id")
    return {tuple(r[:5]): (r[5], r[6]) for r in rows}  # type: ignore[misc]


def committed_photos(db: Path) -> int:
    try:
        return _query(db, "SELECT count(*) FROM photos")[0][0]
    except sqlite3.Error:
        return 0  # not created / not migrated yet


def integrity(db: Path) -> dict[str, int | str]:
    """Checks a consistent library passes: SQLite's own check, and no face without its
    thumbnail, embedding or photo."""
    return {
        "integrity_check": _query(db, "PRAGMA integrity_check")[0][0],
        "foreign_key_violations": len(_query(db, "PRAGMA foreign_key_check")),
        "faces_without_thumb": _query(db, "SELECT count(*) FROM faces WHERE id NOT IN (SELECT face_id FROM face_thumbs)")[0][0],
        "bad_embeddings": _query(db, "SELECT count(*) FROM faces WHERE length(embedding) != 512")[0][0],
        "duplicate_paths": _query(db, "SELECT count(*) FROM (SELECT path FROM photos GROUP BY path HAVING count(*) > 1)")[0][0],
    }


def healthy(db: Path) -> bool:
    i = integrity(db)
    return i["integrity_check"] == "ok" and all(v == 0 for k, v in i.items() if k != "integrity_check")


# --- kill -9 campaigns against `organizer scan` --------------------------------------------

@dataclass
class KillPoint:
    batch_size: int
    workers: int
    #: wait until this many photos are committed (None: kill after ``delay`` seconds from start)
    after_photos: int | None
    delay: float


@dataclass
class KillCampaign:
    kills: int = 0
    finished_before_kill: int = 0
    stages: Counter = field(default_factory=Counter)
    committed_at_kill: list[int] = field(default_factory=list)
    labels_made: dict[FaceKey, str] = field(default_factory=dict)
    seconds: float = 0.0


def plan_kill_points(n_photos: int, count: int, seed: int = 7) -> list[KillPoint]:
    """``count`` kill moments spread over a whole scan: while the interpreter starts,
    while the library is created/migrated and the folder listed, after each stretch of
    committed photos (with a random extra delay so the kill lands anywhere in a batch or
    a commit), and after the last photo (while the scan closes its run)."""
    rng = random.Random(seed)
    batch_sizes, workers = [1, 2, 3, 5, 8], [1, 1, 2]
    points = [KillPoint(2, 1, None, d) for d in (0.05, 0.5, 1.2)]
    middle = count - len(points) - 1
    for i in range(middle):
        target = max(1, round((i + 1) * (n_photos - 2) / (middle + 1)))
        points.append(KillPoint(batch_sizes[i % len(batch_sizes)], workers[i % len(workers)], target,
                                rng.uniform(0.0, 0.4)))
    points.append(KillPoint(4, 2, n_photos, 0.0))
    return points


def scan_command(root: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "organizer.cli", "scan", str(root), "--db", str(db), "-q"]


def _stage(committed_before: int, committed_now: int, n: int) -> str:
    if committed_now == 0:
        return "before the first commit"
    if committed_now >= n:
        return "after the last photo was committed"
    return "mid-scan"


def run_kill_campaign(root: Path, db: Path, points: list[KillPoint], n_photos: int, *,
                      label_between: bool = True, timeout: float = 120.0) -> KillCampaign:
    """Start `organizer scan` for each point, SIGKILL its whole process group at that
    point; between kills, label one more face as the user would (through the library API).
    Returns what happened; the caller then runs a last scan to completion and checks."""
    from organizer.db import Library
    from organizer.labelling import assign_faces

    out = KillCampaign()
    started = time.monotonic()
    for i, pt in enumerate(points):
        env = {**os.environ, "ORGANIZER_BATCH_SIZE": str(pt.batch_size), "ORGANIZER_WORKERS": str(pt.workers)}
        before = committed_photos(db)
        errlog = tempfile.TemporaryFile()
        proc = subprocess.Popen(scan_command(root, db), env=env, cwd=REPO, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=errlog)
        t0 = time.monotonic()
        if pt.after_photos is None:
            while time.monotonic() - t0 < pt.delay and proc.poll() is None:
                time.sleep(0.01)
        else:
            while committed_photos(db) < pt.after_photos and proc.poll() is None and time.monotonic() - t0 < timeout:
                time.sleep(0.02)
            end = time.monotonic() + pt.delay
            while time.monotonic() < end and proc.poll() is None:
                time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            out.kills += 1
            now = committed_photos(db)
            out.committed_at_kill.append(now)
            out.stages[_stage(before, now, n_photos)] += 1
        else:
            errlog.seek(0)
            err = errlog.read().decode(errors="replace")
            if proc.returncode != 0:
                raise AssertionError(f"scan failed on its own (rc {proc.returncode}): {err}")
            out.finished_before_kill += 1
        errlog.close()
        if label_between and committed_photos(db):
            lib = Library.open(f"sqlite:///{db}")
            try:
                with sqlite3.connect(db, timeout=60) as c:
                    row = c.execute("SELECT f.id, p.path, f.top, f.right, f.bottom, f.left FROM faces f "
                                    "JOIN photos p ON p.id = f.photo_id WHERE f.person_id IS NULL "
                                    "ORDER BY f.id DESC LIMIT 1").fetchone()
                if row:
                    name = f"Person {i % 4}"
                    assign_faces(lib, [row[0]], name)
                    out.labels_made[tuple(row[1:])] = name  # type: ignore[index]
            finally:
                lib.close()
    out.seconds = time.monotonic() - started
    return out


def finish_scan(root: Path, db: Path, workers: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "ORGANIZER_WORKERS": str(workers)}
    return subprocess.run(scan_command(root, db), env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


def check_after_kills(db: Path, expected: Counter[FaceKey], campaign: KillCampaign, n_photos: int) -> list[str]:
    """Every way the killed-and-resumed library differs from a clean scan (empty = none)."""
    problems: list[str] = []
    got = face_keys(db)
    dupes = {k: c for k, c in got.items() if c > 1}
    if dupes:
        problems.append(f"{len(dupes)} duplicated faces, e.g. {next(iter(dupes))}")
    if set(got) != set(expected):
        problems.append(f"faces differ from a clean scan: {len(set(expected) - set(got))} missing, "
                        f"{len(set(got) - set(expected))} extra")
    if committed_photos(db) != n_photos:
        problems.append(f"{committed_photos(db)} photos in the library, {n_photos} on disk")
    errors = _query(db, "SELECT path, error FROM photos WHERE status != 'ok'")
    if errors:
        problems.append(f"photos marked bad after the kills: {errors[:3]}")
    have = labels(db)
    lost = {k: v for k, v in campaign.labels_made.items() if have.get(k) != (v, "confirmed")}
    if lost:
        problems.append(f"{len(lost)} labels lost, e.g. {next(iter(lost.items()))}")
    if not healthy(db):
        problems.append(f"integrity: {integrity(db)}")
    return problems


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[k]


# --- a dashboard server in a subprocess, and a client for its Dash callbacks -------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DashboardServer:
    """`organizer dashboard` on 127.0.0.1 in its own process group (so it can be killed
    with everything it started). Use as a context manager; it always stops."""

    def __init__(self, db: Path, *, env: dict | None = None, port: int | None = None) -> None:
        self.db, self.port = db, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> "DashboardServer":
        import urllib.request

        import tempfile

        # the server's log goes to a file: a pipe nobody reads would fill up and block it
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "organizer.cli", "dashboard", "--db", str(self.db), "--port", str(self.port)],
            cwd=REPO, env=self.env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dashboard exited: {self.stderr()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/_dash-layout", timeout=5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError("dashboard did not start in time")

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> "DashboardServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


class DashClient:
    """Calls Dash callbacks over HTTP the way the browser does (POST
    /_dash-update-component), finding each callback in /_dash-dependencies by the
    component ids and properties it listens to."""

    def __init__(self, base_url: str, session: object | None = None) -> None:
        import requests

        self.base = base_url.rstrip("/")
        self.http = session or requests.Session()
        self.deps = self.http.get(self.base + "/_dash-dependencies", timeout=30).json()

    @staticmethod
    def _id_key(cid: object) -> str:
        import json

        return json.dumps(cid, sort_keys=True) if isinstance(cid, dict) else str(cid)

    def find(self, input_id: object, prop: str = "n_clicks") -> dict:
        """The server-side callback with input ``input_id.prop`` (a dict id may use "ALL")."""
        want = self._id_key(input_id)
        for dep in self.deps:
            if dep.get("clientside_function"):
                continue
            for i in dep["inputs"]:
                got = i["id"]
                if i["property"] == prop and self._id_key(_loads(got)) == want:
                    return dep
        raise KeyError(f"no callback listens to {want}.{prop}")

    @staticmethod
    def outputs_of(dep: dict) -> list[dict]:
        out = dep["output"]
        parts = out[2:-2].split("...") if out.startswith("..") else [out]
        result = []
        for part in parts:
            cid, prop = part.rsplit(".", 1)
            result.append({"id": _loads(cid), "property": prop.split("@")[0]})
        return result

    def call(self, dep: dict, inputs: list, state: list, changed: list[str], timeout: float = 60):  # type: ignore[no-untyped-def]
        """POST one callback. ``inputs``/``state``: values in the dependency's order, each
        either a plain value (for a plain id) or a list of (id dict, value) for ALL."""
        def entries(specs: list[dict], values: list) -> list:
            out = []
            for spec, value in zip(specs, values):
                cid = _loads(spec["id"])
                if isinstance(cid, dict) and isinstance(value, list) and all(isinstance(v, tuple) for v in value):
                    out.append([{"id": vid, "property": spec["property"], "value": v} for vid, v in value])
                else:
                    out.append({"id": cid, "property": spec["property"], "value": value})
            return out

        # a short list would be cut silently by zip() and the server would see a call no
        # browser can make (a missing argument): refuse it here instead
        if len(inputs) != len(dep["inputs"]) or len(state) != len(dep.get("state", [])):
            raise ValueError(f"{dep['output']}: {len(dep['inputs'])} inputs and {len(dep.get('state', []))} "
                             f"states expected, {len(inputs)} and {len(state)} given")
        outs = self.outputs_of(dep)
        body = {
            "output": dep["output"],
            "outputs": outs if dep["output"].startswith("..") else outs[0],
            "inputs": entries(dep["inputs"], inputs),
            "state": entries(dep.get("state", []), state),
            "changedPropIds": changed,
        }
        return self.http.post(self.base + "/_dash-update-component", json=body, timeout=timeout)


def walk_components(node: object) -> Iterator[dict]:
    """Every Dash component (a dict with type and props) in a callback's JSON answer."""
    if isinstance(node, dict):
        if "props" in node and "type" in node:
            yield node
        for v in node.values():
            yield from walk_components(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_components(v)


def _loads(cid: str) -> object:
    import json

    if isinstance(cid, str) and cid.startswith("{"):
        try:
            return json.loads(cid)
        except ValueError:
            return cid
    return cid


# --- load: users labelling over HTTP while a scan writes the same file ---------------------------

@dataclass
class LoadReport:
    users: int = 0
    actions: int = 0
    views: int = 0
    seconds: float = 0.0
    action_latencies: list[float] = field(default_factory=list)
    view_latencies: list[float] = field(default_factory=list)
    locked_errors: int = 0
    http_errors: int = 0
    failed_actions: list[str] = field(default_factory=list)
    lost_actions: list[str] = field(default_factory=list)
    scan_commits_during_load: int = 0
    scan_rc: int | None = None
    scan_photos: int = 0

    @property
    def requests_per_s(self) -> float:
        return (self.actions + self.views) / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        a, v = self.action_latencies, self.view_latencies
        return (f"load: {self.users} users, {self.actions} label actions + {self.views} page views in {self.seconds:.1f}s "
                f"= {self.requests_per_s:.1f} requests/s ({self.actions / self.seconds if self.seconds else 0:.1f} actions/s); "
                f"action latency p50 {percentile(a, 50) * 1000:.0f} ms, p95 {percentile(a, 95) * 1000:.0f} ms, "
                f"max {max(a, default=0) * 1000:.0f} ms; page view p95 {percentile(v, 95) * 1000:.0f} ms; "
                f"'database is locked': {self.locked_errors}; HTTP errors: {self.http_errors}; "
                f"failed actions: {len(self.failed_actions)}; lost actions: {len(self.lost_actions)}; "
                f"the scan committed {self.scan_commits_during_load} photos during the load "
                f"({self.scan_photos} new photos in all, exit code {self.scan_rc})")


def _extra_lfw(dst: Path, skip: set[str], count: int) -> int:
    """Copy ``count`` lfw-dev photos of identities not in ``skip`` into ``dst``."""
    import shutil

    src = REPO.parent / "shared" / "photos" / "lfw-dev"
    copied = 0
    for d in sorted(src.iterdir()):
        if copied >= count:
            break
        if not d.is_dir() or d.name in skip:
            continue
        for f in sorted(d.glob("*.jpg"))[:3]:
            if copied >= count:
                break
            (dst / d.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst / d.name / f.name)
            copied += 1
    return copied


def _deal_faces(faces: list[tuple[int, int]], users: int, per_user: int,
                kinds: tuple[str, ...]) -> dict[int, list[tuple[str, tuple[int, int]]]]:
    """Each user's faces, never two of one photo: one person per photo is a rule of the
    library, so a user naming two faces of a photo after the same person is refused."""
    hands: dict[int, list[tuple[int, int]]] = {u: [] for u in range(users)}
    for face in faces:
        for u in range(users):
            hand = hands[u]
            if len(hand) < per_user and all(photo != face[1] for _, photo in hand):
                hand.append(face)
                break
    if any(len(h) < per_user for h in hands.values()):
        raise ValueError(f"the library has too few faces in distinct photos for {users} x {per_user} actions")
    return {u: [(kinds[k % len(kinds)], f) for k, f in enumerate(h)] for u, h in hands.items()}


def run_load_test(src_root: Path, src_db: Path, work: Path, *, users: int = 10, actions_per_user: int = 6,
                  extra_photos: int = 30, deadline_s: float = 300.0) -> LoadReport:
    """``users`` threads, each with its own HTTP session, click label actions (name faces
    on the Unassigned page, name a face on the Photo page, mark a face "not a face") and
    look at a page after each, on a dashboard served from a copy of ``src_db``, while
    `organizer scan` adds ``extra_photos`` new photos to the same library file, committing
    after every photo. Every request goes to 127.0.0.1; the count is fixed, each request
    has a time limit, and everything is stopped at the end."""
    import shutil
    import threading

    import requests

    root = work / "photos"
    shutil.copytree(src_root, root)
    db = work / "load.db"
    with sqlite3.connect(src_db) as a, sqlite3.connect(db) as b:
        a.backup(b)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE library_meta SET value = ? WHERE key = 'root'", (str(root.resolve()),))
        faces = [r for r in c.execute("SELECT f.id, f.photo_id FROM faces f WHERE f.person_id IS NULL AND f.is_face = 1 "
                                      "ORDER BY f.id")]
    new = _extra_lfw(root, {d.name for d in src_root.iterdir()}, extra_photos)
    need = users * actions_per_user
    if len(faces) < need:
        raise ValueError(f"the library has {len(faces)} unassigned faces; {need} are needed")
    report = LoadReport(users=users, scan_photos=new)
    start_photos = committed_photos(db)
    kinds = ("assign", "photo-name", "notface")
    plan = _deal_faces(faces, users, actions_per_user, kinds)
    lock = threading.Lock()
    env = {**os.environ, "ORGANIZER_BATCH_SIZE": "1", "ORGANIZER_WORKERS": "1"}
    with DashboardServer(db) as server:
        clients = [DashClient(server.url, requests.Session()) for _ in range(users)]
        scan = subprocess.Popen(scan_command(root, db), cwd=REPO, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t_wait = time.monotonic()
            while committed_photos(db) == start_photos and scan.poll() is None and time.monotonic() - t_wait < 120:
                time.sleep(0.05)
            at_start = committed_photos(db)

            def user(u: int) -> None:
                client = clients[u]
                assign, name_dep = client.find("unassigned-sel-assign"), client.find("photo-name")
                router = client.find("app-url", "pathname")
                for k, (kind, (face_id, photo_id)) in enumerate(plan[u]):
                    name = f"Load user {u}"
                    t0 = time.monotonic()
                    try:
                        if kind == "assign":
                            resp = client.call(assign, [k + 1, 0, 0, 0], [{"selected": [face_id], "anchor": None}, name],
                                               ["unassigned-sel-assign.n_clicks"])
                        elif kind == "photo-name":
                            resp = client.call(name_dep, [k + 1, 0], [face_id, name], ["photo-name.n_clicks"])
                        else:
                            resp = client.call(assign, [0, 0, k + 1, 0], [{"selected": [face_id], "anchor": None}, ""],
                                               ["unassigned-sel-notface.n_clicks"])
                        text = resp.text
                        status = resp.status_code
                    except requests.RequestException as exc:
                        text, status = str(exc), 599
                    took = time.monotonic() - t0
                    t1 = time.monotonic()
                    try:
                        view = client.call(router, ["/unassigned" if k % 2 else "/people", "", str(k)], [],
                                           ["app-url.pathname"])
                        view_status, view_text = view.status_code, view.text[:2000]
                    except requests.RequestException as exc:
                        view_status, view_text = 599, str(exc)
                    view_took = time.monotonic() - t1
                    with lock:
                        report.action_latencies.append(took)
                        report.view_latencies.append(view_took)
                        report.actions += 1
                        report.views += 1
                        if "locked" in text.lower() or "locked" in view_text.lower():
                            report.locked_errors += 1
                        if status >= 500 or view_status >= 500:
                            report.http_errors += 1
                        elif "toast-error" in text:
                            report.failed_actions.append(f"{kind} face {face_id}: {text[:300]}")

            t0 = time.monotonic()
            threads = [threading.Thread(target=user, args=(u,), daemon=True) for u in range(users)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(max(1.0, deadline_s - (time.monotonic() - t0)))
            report.seconds = time.monotonic() - t0
            report.scan_commits_during_load = committed_photos(db) - at_start
            try:
                report.scan_rc = scan.wait(timeout=deadline_s)
            except subprocess.TimeoutExpired:
                report.scan_rc = None
        finally:
            if scan.poll() is None:
                os.killpg(scan.pid, signal.SIGKILL)
                scan.wait()
    # every action the users were told succeeded is in the library
    with sqlite3.connect(db) as c:
        for u, actions in plan.items():
            for kind, (face_id, _) in actions:
                row = c.execute("SELECT p.name, f.assignment, f.is_face FROM faces f LEFT JOIN people p ON p.id = f.person_id "
                                "WHERE f.id = ?", (face_id,)).fetchone()
                ok = (row is not None and (row[2] == 0 if kind == "notface" else (row[0], row[1]) == (f"Load user {u}", "confirmed")))
                if not ok:
                    report.lost_actions.append(f"user {u} {kind} face {face_id}: {row}")
        ops = c.execute("SELECT count(*) FROM operations").fetchone()[0]
    if ops < report.actions:
        report.lost_actions.append(f"only {ops} operations recorded for {report.actions} actions")
    return report


# --- fuzzing the decoder path ------------------------------------------------------------------

PHOTOS = REPO.parent / "shared" / "photos"
FUZZ_SEEDS = [
    "lfw-dev/Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
    "edge-cases/more/pillow_hopper/hopper.jpg",
    "edge-cases/more/pillow_hopper/hopper_bad_exif.jpg",
    "edge-cases/more/pillow_hopper/hopper_orientation_2.jpg",
    "edge-cases/more/pillow_hopper/hopper.png",
    "edge-cases/more/pillow_hopper/exif.png",
    "edge-cases/more/pillow_hopper/hopper.webp",
    "edge-cases/more/pillow_hopper/hopper.tif",
    "edge-cases/more/pillow_hopper/hopper.bmp",
    "edge-cases/more/pillow_heif/heif_RGB_10__128x128.heif",
    "edge-cases/more/pillow_heif/heif_other_L_exif_xmp_iptc.heic",
]


def fuzz_seeds() -> dict[str, bytes]:
    return {Path(s).name: (PHOTOS / s).read_bytes() for s in FUZZ_SEEDS if (PHOTOS / s).exists()}


def _worker_main(conn) -> None:  # type: ignore[no-untyped-def]
    """Runs in the fuzz worker process: analyse each file it is sent, answer with the outcome."""
    from organizer import faces as face_api
    from organizer.scanner import DetectOptions, FileEntry, analyse_file

    face_api.warm_up()
    opts = DetectOptions()
    while True:
        msg = conn.recv()
        if msg is None:
            return
        root, rel = msg
        st = os.stat(Path(root) / rel)
        try:
            res = analyse_file(root, FileEntry(rel, st.st_size, st.st_mtime), None, opts)
            conn.send(("returned", res.error, res.width, res.height, len(res.faces)))
        except BaseException as exc:  # noqa: BLE001 - the fuzz looks for exactly this
            conn.send(("raised", f"{exc.__class__.__name__}: {exc}", None, None, 0))


class FuzzWorker:
    """One worker process running :func:`organizer.scanner.analyse_file` (decode, detect,
    embed: what a scan worker does). A file that takes longer than ``timeout`` is a hang;
    a worker that dies is a crash; either way the worker is replaced."""

    def __init__(self, timeout: float = 30.0) -> None:
        import multiprocessing

        self.timeout = timeout
        self.ctx = multiprocessing.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()

    def analyse(self, root: Path, rel: str) -> tuple:
        self.conn.send((str(root), rel))
        if not self.conn.poll(self.timeout):
            self.proc.kill()
            self.proc.join()
            self._start()
            return ("hang", f"no answer in {self.timeout:.0f}s", None, None, 0)
        try:
            return self.conn.recv()
        except (EOFError, ConnectionError):
            self.proc.join()
            code = self.proc.exitcode
            self._start()
            return ("crash", f"worker died (exit code {code})", None, None, 0)

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def set_dimensions(data: bytes, width: int, height: int, fix_crc: bool = True) -> bytes:
    """Write absurd dimensions into an image's header (JPEG SOF, PNG IHDR, HEIF ispe)."""
    import struct
    import zlib

    buf = bytearray(data)
    if buf[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(buf):
            if buf[i] != 0xFF:
                break
            marker = buf[i + 1]
            seg = int.from_bytes(buf[i + 2:i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3):
                buf[i + 5:i + 7] = (height & 0xFFFF).to_bytes(2, "big")
                buf[i + 7:i + 9] = (width & 0xFFFF).to_bytes(2, "big")
                break
            i += 2 + seg
    elif buf[:8] == b"\x89PNG\r\n\x1a\n" and len(buf) > 33:
        buf[16:24] = struct.pack(">II", width & 0xFFFFFFFF, height & 0xFFFFFFFF)
        if fix_crc:
            buf[29:33] = struct.pack(">I", zlib.crc32(bytes(buf[12:29])) & 0xFFFFFFFF)
    else:
        at = buf.find(b"ispe")
        if at > 0 and at + 16 <= len(buf):
            buf[at + 8:at + 16] = struct.pack(">II", width & 0xFFFFFFFF, height & 0xFFFFFFFF)
    return bytes(buf)


def exif_segment(entries: list[tuple[int, int, int, bytes]], little: bool = True) -> bytes:
    """A JPEG APP1 Exif segment with the given raw IFD entries (tag, type, count, 4-byte
    value/offset), which may be as broken as the caller likes."""
    import struct

    e = "<" if little else ">"
    ifd = struct.pack(e + "H", len(entries)) + b"".join(
        struct.pack(e + "HHI", tag & 0xFFFF, typ & 0xFFFF, count & 0xFFFFFFFF) + value[:4].ljust(4, b"\0")
        for tag, typ, count, value in entries) + b"\0\0\0\0"
    tiff = (b"II*\x00" if little else b"MM\x00*") + struct.pack(e + "I", 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", min(len(payload) + 2, 0xFFFF)) + payload[:0xFFFD]


def insert_exif(data: bytes, segment: bytes) -> bytes:
    if data[:2] == b"\xff\xd8":
        return data[:2] + segment + data[2:]
    return data
