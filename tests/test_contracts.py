"""docs/CONTRACTS.md against the code, and who may import whom.

Read with ``ast`` (nothing is imported, no dlib), so it runs in milliseconds:

* every public function and class of the core (``organizer/`` without ``cli.py``; a module's
  ``__all__`` where it has one, constants left out) is named in CONTRACTS.md as
  ```module.name```;
* every ```module.name``` (or ```module.Class.attr```) CONTRACTS.md writes exists, and the
  parameters or fields it shows in parentheses are the function's parameters or the class's
  fields, so the document cannot go stale the other way;
* ``organizer/`` imports no front end (``dashboard``, Dash, Flask, argparse) except in
  ``cli.py``; ``dashboard/`` and ``organizer/cli.py`` use no ``_private`` name of ``organizer``.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORGANIZER = ROOT / "organizer"
DASHBOARD = ROOT / "dashboard"
DOC = ROOT / "docs" / "CONTRACTS.md"
#: organizer modules that are front ends, not core (their names are commands, not API)
FRONT_ENDS = {"cli"}
#: what only a front end may import
FRONT_END_PACKAGES = {"dashboard", "dash", "flask", "argparse", "plotly"}

Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def modules() -> dict[str, ast.Module]:
    """Every ``organizer/<name>.py`` by name."""
    return {p.stem: parse(p) for p in sorted(ORGANIZER.glob("*.py")) if p.stem != "__init__"}


def top_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """The module's statements, with those under a top-level ``if``/``try`` (TYPE_CHECKING, optional imports)."""
    for node in tree.body:
        yield node
        if isinstance(node, ast.If | ast.Try):
            for block in (node.body, node.orelse, getattr(node, "handlers", []), getattr(node, "finalbody", [])):
                for inner in block:
                    yield from (inner.body if isinstance(inner, ast.ExceptHandler) else [inner])


def declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


def public_names(tree: ast.Module) -> list[str]:
    """What a module offers other layers: its ``__all__`` without constants, else every
    top-level function and class without a leading underscore."""
    names = declared_all(tree)
    if names is not None:
        return [n for n in names if not n.isupper()]
    return [n.name for n in tree.body if isinstance(n, Def) and not n.name.startswith("_")]


def bindings(tree: ast.Module) -> dict[str, ast.AST]:
    """Top-level name -> the statement that binds it (def, class, assignment or import)."""
    out: dict[str, ast.AST] = {}
    for node in top_level(tree):
        if isinstance(node, Def):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        out[name.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                out[(alias.asname or alias.name).split(".")[0]] = node
    return out


def resolve(mods: dict[str, ast.Module], module: str, name: str) -> ast.AST | None:
    """The definition of ``module.name``, following ``from .other import name`` re-exports."""
    for _ in range(5):
        node = bindings(mods[module]).get(name)
        if not (isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in mods):
            return node
        alias = next(a for a in node.names if (a.asname or a.name) == name)
        module, name = node.module, alias.name
    return None


def parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    a = fn.args
    names = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs}
    names |= {p.arg for p in (a.vararg, a.kwarg) if p is not None}
    return names


def members(cls: ast.ClassDef) -> set[str]:
    """Fields, class attributes, methods and properties of a class, and its ``__init__``'s parameters."""
    out: set[str] = set()
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
        elif isinstance(node, ast.Assign):
            out |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.add(node.name)
            if node.name == "__init__":
                out |= parameters(node) - {"self"}
    return out


def fields(cls: ast.ClassDef) -> set[str]:
    """What ``Class(...)`` in the document may list: fields and ``__init__`` parameters."""
    out = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            out |= parameters(node) - {"self"}
    return out


@dataclass(frozen=True)
class Ref:
    """One ```module.name[.attr][(a, b, ...)]``` of the document."""

    module: str
    name: str
    attr: str | None
    listed: tuple[str, ...] | None  # the names in the parentheses, None without parentheses
    text: str


REF = re.compile(r"([a-z_][a-z0-9_]*)\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?")


def split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def listed_names(span: str, start: int) -> tuple[str, ...] | None:
    """The parameter or field names in the parentheses that open at ``span[start]``, if any."""
    if start >= len(span) or span[start] != "(":
        return None
    depth = 0
    for end in range(start, len(span)):
        depth += {"(": 1, ")": -1}.get(span[end], 0)
        if depth == 0:
            break
    names = []
    for part in split_top(span[start + 1:end]):
        found = re.match(r"\*{0,2}([A-Za-z_]\w*)", part)
        if found:
            names.append(found.group(1))
    return tuple(names)


def doc_refs(text: str, module_names: set[str]) -> list[Ref]:
    refs = []
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # code blocks are examples, not references
    for span in re.findall(r"`([^`]+)`", text):
        span = " ".join(span.split())
        found = REF.match(span)
        if found and found.group(1) in module_names and found.group(2) != "py":  # `cli.py` is a file
            refs.append(Ref(found.group(1), found.group(2), found.group(3), listed_names(span, found.end()), span))
    return refs


def undocumented(mods: dict[str, ast.Module], text: str) -> list[str]:
    named = {(r.module, r.name) for r in doc_refs(text, set(mods))}
    return [f"{m}.{n}" for m, tree in mods.items() if m not in FRONT_ENDS
            for n in public_names(tree) if (m, n) not in named]


def stale(mods: dict[str, ast.Module], text: str) -> list[str]:
    """What the document shows that the code does not have, one line each."""
    wrong = []
    for ref in doc_refs(text, set(mods)):
        node = resolve(mods, ref.module, ref.name)
        if node is None:
            wrong.append(f"`{ref.text}`: no {ref.name} in organizer/{ref.module}.py")
            continue
        if ref.attr is not None:
            if not isinstance(node, ast.ClassDef) or ref.attr not in members(node):
                wrong.append(f"`{ref.text}`: {ref.module}.{ref.name} has no {ref.attr}")
                continue
            node = next((n for n in node.body if getattr(n, "name", None) == ref.attr), None)
        if ref.listed is None or node is None:
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            known, what = parameters(node), "parameter"
        elif isinstance(node, ast.ClassDef):
            known, what = fields(node), "field"
        else:
            continue
        extra = [n for n in ref.listed if n not in known]
        if extra:
            wrong.append(f"`{ref.text}`: no {what} {', '.join(extra)}")
    return wrong


def test_every_public_name_of_the_core_is_in_contracts() -> None:
    missing = undocumented(modules(), DOC.read_text(encoding="utf-8"))
    assert not missing, ("docs/CONTRACTS.md does not name these public functions/classes (add a line "
                         "`module.name(...)` to their module's section, or make them private):\n  "
                         + "\n  ".join(missing))


def test_every_name_in_contracts_exists_as_shown() -> None:
    wrong = stale(modules(), DOC.read_text(encoding="utf-8"))
    assert not wrong, "docs/CONTRACTS.md shows what the code does not have:\n  " + "\n  ".join(wrong)


def test_contracts_has_a_section_for_every_module() -> None:
    headings = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    missing = [m for m in modules() if not any(re.search(rf"\b{m}\.py\b", h) for h in headings)]
    assert not missing, f"docs/CONTRACTS.md has no section whose heading names <m>.py for: {missing}"


def package_of(path: Path) -> str:
    return ".".join(path.resolve().relative_to(ROOT).parent.parts)


def imported_modules(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line, absolute module, imported name or None) of every import in ``path``, nested
    ones included, relative ones resolved."""
    package = package_of(path).split(".")
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                yield node.lineno, base, alias.name


def test_the_core_imports_no_front_end() -> None:
    found = []
    for path in sorted(ORGANIZER.glob("*.py")):
        if path.stem in FRONT_ENDS:
            continue
        for line, module, _name in imported_modules(path):
            if module.split(".")[0] in FRONT_END_PACKAGES:
                found.append(f"organizer/{path.name}:{line} imports {module}")
    assert not found, "the core imports a front end (only organizer/cli.py may):\n  " + "\n  ".join(found)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(path: Path) -> list[str]:
    """Every ``_name`` of an ``organizer`` module that ``path`` imports or reaches as ``module._name``."""
    tree, in_organizer = parse(path), package_of(path) == "organizer"
    found: list[str] = []
    aliases: set[str] = set()
    for line, module, name in imported_modules(path):
        if module.split(".")[0] != "organizer":
            continue
        parts = module.split(".") + ([name] if name else [])
        if any(is_private(p) for p in parts):
            found.append(f"{path.relative_to(ROOT)}:{line} imports {'.'.join(parts)}")
    for node in ast.walk(tree):  # names bound to organizer modules: import organizer.x as y, from organizer import x
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("organizer")}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module == "organizer" or (node.level == 1 and in_organizer and not module):
                aliases |= {a.asname or a.name for a in node.names if (ORGANIZER / f"{a.name}.py").exists()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {ast.unparse(node)}")
    return found


def test_front_ends_use_only_public_names_of_the_core() -> None:
    found = [hit for path in sorted(DASHBOARD.rglob("*.py")) for hit in private_uses(path)]
    found += private_uses(ORGANIZER / "cli.py")
    assert not found, ("dashboard/ and organizer/cli.py may call only the core's public names "
                       "(make the helper public and add it to docs/CONTRACTS.md):\n  " + "\n  ".join(found))
