"""The README's install command works in a brand-new virtual environment.

This is the test for the two install traps: face_recognition 1.3.0 asks for the `dlib`
source package (a 10+ minute compile), and face_recognition_models needs
`pkg_resources` (gone from setuptools >= 81). It builds a fresh venv with install.py
exactly as README says, then scans real photos with the installed `organizer`, as a
user who never ran it before (an empty home folder): the fast embedding engine must be
there with no extra step.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, photos_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("ORGANIZER_SKIP_INSTALL_TEST"):
        pytest.skip("ORGANIZER_SKIP_INSTALL_TEST is set")
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    done = subprocess.run([sys.executable, str(REPO / "install.py"), "--venv", str(env_dir)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return env_dir


def _new_user(home: Path) -> dict[str, str]:
    """The environment of a user whose data folder holds nothing of ours yet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORGANIZER_", "XDG_"))}
    return {**env, "HOME": str(home)}


def test_fresh_venv_has_prebuilt_dlib_and_old_setuptools(fresh_venv: Path, tmp_path: Path) -> None:
    py = fresh_venv / "bin" / "python"
    listing = subprocess.run([str(py), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True)
    pkgs = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listing.stdout)}
    assert "dlib-bin" in pkgs and "dlib" not in pkgs  # the wheel, never the source package
    assert pkgs["face-recognition"] == "1.3.0"
    assert int(pkgs["setuptools"].split(".")[0]) < 81
    probe = subprocess.run([str(py), "-c", "import pkg_resources, face_recognition, organizer, dashboard, migrations; print('ok')"],
                           capture_output=True, text=True)
    assert probe.returncode == 0 and "ok" in probe.stdout, probe.stderr
    # the fast engine works out of the box: built from the installed model file, checked against dlib
    engine = subprocess.run([str(py), "-c", "from organizer import faces; print(faces.embedding_engine())"],
                            capture_output=True, text=True, cwd=tmp_path, env=_new_user(tmp_path), timeout=300)
    assert engine.returncode == 0 and engine.stdout.split() == ["onnx"], engine.stdout + engine.stderr
    assert list((tmp_path / ".local" / "share" / "organizer" / "engines").glob("*.onnx"))


def test_installed_organizer_scans_a_folder(fresh_venv: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(photos_dir("people-small/train/biden"), photos / "biden")
    db = tmp_path / "library.db"
    organizer = fresh_venv / "bin" / "organizer"
    # run outside the repo so the installed copy (not the checkout) is what runs
    done = subprocess.run([str(organizer), "scan", str(photos), "--db", str(db), "-q"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env=_new_user(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    assert "2 new" in done.stdout and "2 faces found" in done.stdout
    assert "slower descriptor" not in done.stderr, done.stderr
    with sqlite3.connect(db) as c:
        assert c.execute("select distinct embedding_engine from faces").fetchall() == [("onnx-dlib-resnet-v1",)]
    stats = subprocess.run([str(organizer), "stats", "--db", str(db)], cwd=tmp_path, capture_output=True, text=True)
    assert "faces:    2" in stats.stdout
