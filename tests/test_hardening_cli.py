"""Every command of the CLI, with arguments missing, of the wrong type, out of range, or
naming things that do not exist: exit code non-zero, one line on stderr, no traceback.

The cases are generated from the argument parser itself, so a command added later is
covered without touching this file."""
from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from organizer import cli
from organizer.db import Library

from .conftest import REPO

#: commands whose successful run would not return (a server); their bad arguments are
#: still checked, only the "valid syntax, wrong things" run is left out
LONG_RUNNING = {"dashboard"}


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _arguments(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def _sample(a: argparse.Action) -> list[str]:
    """A syntactically valid value for an argument (that names nothing that exists)."""
    if a.choices:
        value = str(next(iter(a.choices)))
    elif a.type in (int, cli._positive_int, cli._non_negative_int) or getattr(a.type, "__name__", "").endswith("int"):
        value = "987654"
    elif a.type is float or getattr(a.type, "__name__", "").endswith("float"):
        value = "1.5"
    elif a.metavar and "DATE" in str(a.metavar).upper():
        value = "2001-02-03"
    else:
        value = "nobody-xyz"
    if a.nargs in ("+", "*") or (isinstance(a.nargs, int) and a.nargs > 1):
        return [value] * (a.nargs if isinstance(a.nargs, int) else 1)
    return [value]


def valid_argv(name: str, p: argparse.ArgumentParser, db: str) -> list[str]:
    argv = [name]
    for a in _arguments(p):
        if a.option_strings:
            if a.required:
                argv += [a.option_strings[-1], *_sample(a)]
        elif a.nargs not in ("?", "*"):
            argv += _sample(a)
    if any("--db" in a.option_strings for a in _arguments(p)):
        argv += ["--db", db]
    return argv


def bad_cases(db: str) -> Iterator[tuple[str, list[str]]]:
    """(what is wrong, argv) for every command."""
    for name, p in commands().items():
        args = _arguments(p)
        full = valid_argv(name, p, db)
        yield f"{name}: unknown option", [*full, "--no-such-option"]
        yield f"{name}: extra argument", [*full, "unexpected-extra", "another"]
        required = [a for a in args if a.required or (not a.option_strings and a.nargs not in ("?", "*"))]
        for a in required:
            # drop this one argument (and its value) from a full command line
            argv = [name]
            for b in args:
                if b is a:
                    continue
                if b.option_strings and b.required:
                    argv += [b.option_strings[-1], *_sample(b)]
                elif not b.option_strings and b.nargs not in ("?", "*"):
                    argv += _sample(b)
            yield f"{name}: without {a.dest}", argv
        for a in args:
            typed = a.type not in (None, str) or a.choices
            if not typed or a.nargs == 0:
                continue
            for wrong in ("abc", "-3", "0", "1e999", ""):
                if a.choices and wrong in map(str, a.choices):
                    continue
                try:
                    if a.type is not None and not a.choices:
                        a.type(wrong)
                        continue  # a value this argument accepts
                except (argparse.ArgumentTypeError, ValueError, TypeError):
                    pass
                argv = [name]
                for b in args:
                    if b is a:
                        argv += ([b.option_strings[-1]] if b.option_strings else []) + [wrong]
                    elif b.option_strings and b.required:
                        argv += [b.option_strings[-1], *_sample(b)]
                    elif not b.option_strings and b.nargs not in ("?", "*"):
                        argv += _sample(b)
                yield f"{name}: {a.dest}={wrong!r}", argv


def _one_line(err: str) -> bool:
    text = err.strip()
    return bool(text) and "\n" not in text and "Traceback" not in text


def test_every_command_rejects_bad_arguments_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "lib.db")
    cases = list(bad_cases(db))
    names = commands()
    assert len(names) >= 10 and "forget" in names and "scan" in names
    problems = []
    for what, argv in cases:
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's own exit (e.g. --help) must not be reached here
            code = exc.code
        except Exception as exc:  # noqa: BLE001 - any escaping exception is the failure we look for
            problems.append(f"{what}: raised {exc.__class__.__name__}: {exc}")
            continue
        err = capsys.readouterr().err
        if code == 0 or not _one_line(err):
            problems.append(f"{what}: exit {code}, stderr {err!r}")
    print(f"\n{len(cases)} bad command lines over {len(names)} commands")
    assert problems == [], "\n".join(problems)


def test_every_command_naming_things_that_do_not_exist_fails_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid syntax, but the people, faces, clusters, folders named do not exist."""
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "lib.db")
    Library.open(f"sqlite:///{db}").close()
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    problems, ran = [], 0
    for name, p in commands().items():
        if name in LONG_RUNNING:
            continue
        argv = valid_argv(name, p, db)
        try:
            code = cli.main(argv)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{argv}: raised {exc.__class__.__name__}: {exc}")
            continue
        ran += 1
        captured = capsys.readouterr()
        if code != 0 and not _one_line(captured.err):
            problems.append(f"{argv}: exit {code}, stderr {captured.err!r}")
        if "Traceback" in captured.out + captured.err:
            problems.append(f"{argv}: traceback")
    assert ran >= 10 and problems == [], "\n".join(problems)


def test_a_bad_library_path_is_one_line_for_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for db in (str(blocker / "lib.db"), str(blocker)):  # a folder that is a file; a file that is not a library
        for name, p in commands().items():
            if not any("--db" in a.option_strings for a in _arguments(p)) or name in LONG_RUNNING:
                continue
            argv = valid_argv(name, p, db)
            code = cli.main(argv)
            err = capsys.readouterr().err
            assert code != 0 and _one_line(err), (argv, code, err)


def test_through_a_real_process_too(tmp_path: Path) -> None:
    """The same guarantees from a real `python -m organizer.cli` (nothing escapes main)."""
    for argv in (["forget"], ["assign", "x", "--to", "A"], ["scan", str(tmp_path / "none"), "--db", str(tmp_path / "l.db")],
                 ["name", "1", "", "--db", str(tmp_path / "l.db")]):
        done = subprocess.run([sys.executable, "-m", "organizer.cli", *argv], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode != 0 and _one_line(done.stderr), (argv, done.stderr)


def test_version_is_the_package_version(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import organizer

    monkeypatch.setattr(organizer, "__version__", "9.8.7")
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == "organizer 9.8.7\n"


def test_every_command_is_declared_once_and_reaches_its_handler() -> None:
    """The parser is made from the declarations: same names, same order, each command's
    parser calls the handler declared with it."""
    names = [c.name for c in cli.COMMANDS]
    assert len(names) == len(set(names)) and list(commands()) == names
    for c in cli.COMMANDS:
        assert commands()[c.name].get_default("func") is c.handler, c.name
    # one handler, two commands: hide/unhide differ only by the value they pass it
    assert commands()["hide"].get_default("hidden") is True and commands()["unhide"].get_default("hidden") is False


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_help_states_the_default_the_argument_really_has() -> None:
    """A default written in a help text by hand drifts from the argument's own; every
    help that names a default names the real one (settings: their declared default)."""
    from organizer import config
    from organizer.config import Settings

    settings = {f.name for f in dataclasses.fields(Settings)}
    checked = 0
    for name, p in commands().items():
        formatter = p._get_formatter()
        for a in _arguments(p):
            text = formatter._expand_help(a) if a.help else ""
            if "default" not in text or a.dest in ("include_auto", "size", "password"):
                continue  # those describe a behaviour ("faces you confirmed"), not a value
            if a.dest in settings:
                want = rf"default: \${config.env_name(a.dest)} or {re.escape(config.default_text(a.dest))}\)"
            else:
                want = rf"default {re.escape(_shown(a.default))}\b"
            assert re.search(want, text), (name, a.dest, text)
            checked += 1
    assert checked >= 15


@pytest.mark.parametrize("argv, words", [
    (["history", "--limit", "1_0"], "'1_0' is not a whole number"),
    (["slideshow", "A", "--format", "html", "-o", "out", "--seconds", "inf"], "'inf' is not a finite number"),
    (["slideshow", "A", "--format", "html", "-o", "out", "--seconds", "0"], "'0' must be greater than 0"),
    (["clusters", "--offset", "-1"], "'-1' must be 0 or more"),
])
def test_counts_and_durations_are_checked_like_settings(argv: list[str], words: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """--limit, --seconds ... go through the settings' number parser: what ORGANIZER_* and
    the settings' flags refuse (1_0, inf), these refuse too, in one line, exit 2."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and words in err, err
