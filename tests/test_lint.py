"""The lint and type gate: ruff and mypy, configured in pyproject.toml, find nothing.

Both tools run over their whole configured scope (organizer/, dashboard/,
migrations/env.py, install.py), so a broken configuration or a crash fails here, and so
does any finding: ``GATED`` is None, every file in the scope is held clean (as
``.ci/run`` holds it with the README's ``ruff check && mypy``).

``GATED`` can name a set of files instead, to fail only on those (how the scope was made
clean file by file); the findings in the others are then reported by the tools, not failed on.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: the files that must stay clean; None = every file in the tools' scope
GATED: frozenset[str] | None = None

#: "path:line..." at the start of a finding, in both tools' concise output
_FINDING = re.compile(r"^(?P<path>[^\s:][^:]*\.py):\d+:")


def _tool(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (python3 install.py --dev installs it)")


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def findings_in_gated(output: str, gated: frozenset[str] | None) -> list[str]:
    """The lines of ``output`` that report a finding in a gated file (with the notes
    that follow them)."""
    kept: list[str] = []
    keep = False
    for line in output.splitlines():
        m = _FINDING.match(line)
        if m:
            keep = gated is None or Path(m["path"]).as_posix() in gated
        elif not line.startswith(" "):
            keep = False
        if keep:
            kept.append(line)
    return kept


def test_gated_files_exist() -> None:
    # a renamed or misspelt entry would silently gate nothing
    missing = sorted(p for p in GATED or () if not (REPO / p).is_file())
    assert not missing, f"GATED names files that do not exist: {missing}"


def test_ruff_finds_nothing() -> None:
    _tool("ruff")
    res = _run(["ruff", "check", "--no-cache", "--no-fix", "--output-format", "concise"])
    assert res.returncode in (0, 1), f"ruff did not run (exit {res.returncode}):\n{res.stdout}{res.stderr}"
    found = findings_in_gated(res.stdout, GATED)
    assert not found, "ruff (rules: [tool.ruff] in pyproject.toml):\n" + "\n".join(found)


def test_mypy_finds_nothing() -> None:
    _tool("mypy")
    res = _run(["mypy", "--no-color-output", "--no-error-summary", "--show-error-codes"])
    assert res.returncode in (0, 1), f"mypy did not run (exit {res.returncode}):\n{res.stdout}{res.stderr}"
    found = findings_in_gated(res.stdout, GATED)
    assert not any(": error:" in line for line in found), \
        "mypy (settings: [tool.mypy] in pyproject.toml):\n" + "\n".join(found)
