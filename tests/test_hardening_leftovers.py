"""Issue 11, item 8: what slideshow exports leave behind.

* ``kill -9`` of an mp4 export: its ffmpeg encoders die with it, and the next export to
  the same place removes the hidden work folder (only folders whose owner is gone);
* the dashboard's temporary export folder goes when the dashboard exits (normally or by
  SIGTERM), and the next dashboard removes one left by a dashboard killed outright;
* ``organizer forget`` deletes the dashboard downloads of the forgotten person and names
  the slideshows the user exported.

Everything runs for real: real processes killed with SIGKILL, real ffmpeg, real files."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from PIL import Image

from organizer import slideshow as sl
from organizer.db import Library
from organizer.privacy import forget_person
from organizer.testing import generate_library

from .conftest import REPO

#: how long a killed export's encoders may take to be gone. They die at once (the kernel
#: kills them with their parent); the limit only bounds the wait where that is broken,
#: where each encoder would run for minutes (600 s of video per photo).
GONE_WITHIN_S = 60


def _photos(folder: Path, n: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        f = folder / f"photo{i}.jpg"
        Image.effect_noise((640, 480), 40 + i).convert("RGB").save(f, quality=80)
        files.append(f)
    return files


def _selection(files: list[Path]) -> sl.Selection:
    slides = [sl.Slide(i + 1, f.name, f, None, None, 640, 480, [(100.0, 300.0, 300.0, 100.0)], ["Test"])
              for i, f in enumerate(files)]
    return sl.Selection([sl.PersonRef(1, "Test")], "all", slides)


EXPORT_SCRIPT = """
import sys
from pathlib import Path
from tests.test_hardening_leftovers import _selection
from organizer import slideshow as sl
if sys.argv[3] == "python":  # as on a system without util-linux's setpriv
    sl._setpriv = lambda: None
files = sorted(Path(sys.argv[1]).glob("*.jpg"))
def progress(done, total):
    print("step", done, flush=True)
sl.export_slideshow(_selection(files), sys.argv[2], "mp4", size="1280x720", seconds=600, progress=progress)
"""


def _gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(procs: list[psutil.Process], limit: float) -> list[psutil.Process]:
    """The processes still running after ``limit`` seconds (returns as soon as none is)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        alive = [p for p in procs if not _gone(p)]
        if not alive:
            return []
        time.sleep(0.1)
    return [p for p in procs if not _gone(p)]


def _encoders(parent: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in parent.children(recursive=True):
        try:
            if any("libx264" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


@pytest.mark.parametrize("tie", ["setpriv", "python"])
def test_kill_9_of_an_mp4_export_ends_its_encoders_and_the_next_export_cleans_up(tmp_path: Path, tie: str) -> None:
    """Both ways of tying the encoders to the export: setpriv, and the Python shim used
    where setpriv is missing."""
    if tie == "setpriv" and sl._setpriv() is None:
        pytest.skip("setpriv --pdeathsig is not available here (the python shim case covers this system)")
    sl.ffmpeg_exe()  # imageio-ffmpeg is a dependency: fails loudly if missing
    files = _photos(tmp_path / "photos")
    out = tmp_path / "show.mp4"
    proc = subprocess.Popen([sys.executable, "-c", EXPORT_SCRIPT, str(tmp_path / "photos"), str(out), tie], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    encoders: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()   # "step 1": the first photo's encoder has started
        assert line.startswith("step"), (line, proc.stderr.read() if proc.stderr else "")
        encoders = _encoders(psutil.Process(proc.pid))
        assert encoders, "no ffmpeg encoder running under the export"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left = _wait_gone(encoders, GONE_WITHIN_S)
        assert left == [], f"ffmpeg still running {GONE_WITHIN_S} s after its export was killed: {left}"
    finally:
        for p in encoders:
            try:
                p.kill()
            except psutil.Error:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".show.mp4.") and p.name.endswith(".partial")]
    assert len(stale) == 1 and not out.exists()   # what the kill left

    # leftovers of a live export (this process) and of an unknown owner stay
    live = tmp_path / f".show.mp4.{sl.owner_tag()}.abcd1234.partial"
    old_style = tmp_path / ".show.mp4.k3j4h5g6.partial"
    reused_pid = tmp_path / f".show.mp4.{os.getpid()}-1@{socket.gethostname()}.zzzz0000.partial"
    for d in (live, old_style, reused_pid):
        d.mkdir()
    report = sl.export_slideshow(_selection(files), out, "mp4", size="320x240", seconds=0.2)
    assert out.is_file() and report.photos == 2
    assert sorted(report.removed_partials) == sorted([stale[0], reused_pid])
    assert not stale[0].exists() and not reused_pid.exists()
    assert live.is_dir() and old_style.is_dir()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert sorted(leftovers) == sorted([live.name, old_style.name])


def test_a_dead_owner_is_told_from_a_live_one() -> None:
    done = subprocess.run([sys.executable, "-c", "from organizer.slideshow import owner_tag; print(owner_tag())"],
                          cwd=REPO, capture_output=True, text=True, check=True)
    dead = done.stdout.strip()
    assert sl.owner_alive(dead) is False
    assert sl.owner_alive(sl.owner_tag()) is True
    assert sl.owner_alive(f"{os.getpid()}-1@elsewhere.example") is True   # another computer's: cannot tell
    assert sl.owner_alive("k3j4h5g6") is None


DASHBOARD_SCRIPT = """
import sys
from dashboard.app import create_app
from organizer.db import Library
app = create_app(Library.open(sys.argv[1]))
jobs = app.server.extensions["organizer_slideshow"]
folder = jobs.folder
(folder / "job1").mkdir()
(folder / "job1" / "Test.mp4").write_bytes(b"video of a person")
print(folder, flush=True)
sys.stdin.readline()
"""


def _dashboard(db: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", DASHBOARD_SCRIPT, f"sqlite:///{db}"], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read() if proc.stderr else ""
    folder = Path(line)
    assert (folder / "job1" / "Test.mp4").is_file()
    return proc, folder


def test_dashboard_export_folder_goes_with_the_dashboard(tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    Library.open(f"sqlite:///{db}").close()
    # a normal exit, then SIGTERM (kill, a service stop)
    for stop in ("exit", "term"):
        proc, folder = _dashboard(db)
        if stop == "exit":
            proc.communicate("\n", timeout=120)
        else:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=120)
        assert not folder.exists(), (stop, proc.returncode)
    # SIGKILL leaves it; the next dashboard's first export folder removes it
    proc, killed = _dashboard(db)
    proc.kill()
    proc.communicate(timeout=120)
    assert killed.is_dir()
    proc, folder = _dashboard(db)
    try:
        assert not killed.exists() and folder.is_dir()
    finally:
        proc.communicate("\n", timeout=120)
    assert not folder.exists()


def _wait_for(job, limit: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while job.state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    return job


def test_forget_deletes_dashboard_downloads_and_names_your_exports(tmp_path: Path) -> None:
    from dashboard.pages.slideshow import ExportJobs

    db = tmp_path / "lib.db"
    generate_library(db, faces=200, named_people=3)
    lib = Library.open(f"sqlite:///{db}")
    root = lib.root
    assert root is not None
    with sqlite3.connect(db) as c:
        people = dict(c.execute("SELECT id, name FROM people ORDER BY id LIMIT 2").fetchall())
        paths = [r[0] for r in c.execute(
            "SELECT DISTINCT photos.path FROM photos JOIN faces ON faces.photo_id = photos.id "
            "WHERE faces.person_id IN (1, 2) AND faces.assignment = 'confirmed'")]
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (160, 120), (120, 90, 60)).save(root / rel)
    forgotten, other = people[1], people[2]

    mine = tmp_path / "exports" / "mine"
    (tmp_path / "exports").mkdir()
    sl.export_slideshow(sl.select_photos(lib, [forgotten]), mine, "folder")
    theirs = tmp_path / "exports" / "other"
    sl.export_slideshow(sl.select_photos(lib, [other]), theirs, "folder")
    jobs = ExportJobs(lib, folder=tmp_path / "dashboard")
    (tmp_path / "dashboard").mkdir()
    downloads = {}
    for name in (forgotten, other):
        job = _wait_for(jobs.start({"people": [name], "fmt": "folder"}))
        assert job.state == "done" and job.file is not None and job.file.is_file(), job.message
        downloads[name] = job.file

    report = forget_person(lib, forgotten)
    assert report.exports_removed == [str(downloads[forgotten])] and not downloads[forgotten].exists()
    assert report.exports_kept == [str(mine)] and mine.is_dir()   # the user's file: named, not deleted
    assert str(mine) in report.summary()
    assert downloads[other].is_file() and theirs.is_dir()          # other people's slideshows stay
    with sqlite3.connect(db) as c:
        meta = "".join(v for (v,) in c.execute("SELECT value FROM library_meta"))
    assert str(mine) not in meta and str(downloads[forgotten]) not in meta and str(theirs) in meta
    # forgetting everyone's faces settles the rest
    from organizer.privacy import forget_all_faces

    rest = forget_all_faces(lib)
    assert rest.exports_removed == [str(downloads[other])] and rest.exports_kept == [str(theirs)]
    lib.close()
