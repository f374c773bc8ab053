#!/usr/bin/env python3
"""Install the organizer into a virtual environment, avoiding the two known install traps.

Why a script and not a bare ``pip install .``:

* ``face_recognition`` 1.3.0 declares a dependency on ``dlib``; pip would download the
  dlib *source* and compile it for 10+ minutes (and fail without cmake and a compiler).
  We depend on the prebuilt ``dlib-bin`` wheel instead and install face_recognition
  with ``--no-deps``.
* ``face_recognition_models`` imports ``pkg_resources``, which setuptools >= 81 removed.
  The project pins ``setuptools<81`` in its runtime dependencies.

Usage::

    python3 install.py            # creates .venv/ and installs the organizer into it
    python3 install.py --dev      # also the test tools (pytest, dash[testing], ...)
    python3 install.py --venv DIR # another environment folder

Only the Python standard library is used here, so it runs on a bare Python 3.11.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
FACE_RECOGNITION = "face_recognition==1.3.0"


def venv_python(env_dir: Path) -> Path:
    if os.name == "nt":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=str(ROOT / ".venv"), help="environment folder (default: .venv)")
    parser.add_argument("--dev", action="store_true", help="also install the test dependencies")
    parser.add_argument("--editable", action="store_true", help="install the project in editable mode")
    args = parser.parse_args(argv)

    if sys.version_info < (3, 11):  # noqa: UP036 - this runs on whatever python3 is, to say it is too old
        print(f"install.py: Python 3.11 or newer is needed, this is {sys.version.split()[0]}", file=sys.stderr)
        return 2

    env_dir = Path(args.venv).resolve()
    py = venv_python(env_dir)
    if not py.exists():
        print(f"creating virtual environment in {env_dir}", flush=True)
        venv.EnvBuilder(with_pip=True).create(env_dir)

    pip = [str(py), "-m", "pip", "--disable-pip-version-check"]
    try:
        run([*pip, "install", "-q", "--upgrade", "pip", "setuptools>=60,<81", "wheel"])
        target = ".[test]" if args.dev else "."
        editable = ["-e"] if (args.editable or args.dev) else []
        run([*pip, "install", "-q", *editable, target])
        # Never let pip resolve face_recognition's `dlib` requirement (source build).
        run([*pip, "install", "-q", "--no-deps", FACE_RECOGNITION])
        check = "import face_recognition, dlib, organizer; print('ok: dlib', dlib.__version__)"
        run([str(py), "-W", "ignore", "-c", check])
    except subprocess.CalledProcessError as exc:
        print(f"install.py: step failed (exit {exc.returncode}): {' '.join(exc.cmd)}", file=sys.stderr)
        return 1
    print(f"\ninstalled. Run:  {env_dir / 'bin' / 'organizer'} --help")
    return 0


if __name__ == "__main__":
    sys.exit(main())
