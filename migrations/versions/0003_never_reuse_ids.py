"""ids are never reused (SQLite AUTOINCREMENT), names stored in one Unicode form

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:00:00

SQLite gives a new row the largest id + 1, so deleting the newest face and scanning a new
photo handed the old id to a stranger's face, and undo wrote the old decision onto it.
AUTOINCREMENT tables keep a high-water mark in ``sqlite_sequence`` instead. SQLite cannot
add the flag to a table, so each table is rebuilt (copy, drop, rename); ``organizer.db.upgrade``
turns foreign keys off around it, since dropping ``faces`` with them on would delete every
thumbnail and "not this person" answer through ON DELETE CASCADE.

The high-water marks start above every id the undo history still names, so an id that was
deleted before this revision cannot come back either.

Names are rewritten to NFC without invisible format characters (``organizer.browse.clean_name``),
except where that would make two people share a name: those stay as typed, for the user to merge.
"""
from __future__ import annotations

import json
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TABLES = ("photos", "people", "clusters", "faces", "operations")


def _clean(name: str) -> str:
    text = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch) != "Cf")
    return " ".join(text.split())


def _ids_in_history(conn: sa.Connection) -> dict[str, int]:
    """The largest face / person / cluster id any undo record names."""
    top = {"faces": 0, "people": 0, "clusters": 0}
    for (raw,) in conn.execute(sa.text("SELECT undo FROM operations")):
        try:
            data = json.loads(raw) if isinstance(raw, str) else (raw or {})
            faces = [int(k) for k in data.get("faces") or {}]
            faces += [int(pair[0]) for key in ("rejections_added", "rejections_removed") for pair in data.get(key) or []]
            people = [int(k) for key in ("people", "people_deleted") for k in data.get(key) or {}]
            people += [int(i) for i in data.get("people_created") or []]
            clusters = [int(i) for i in data.get("clusters_created") or []]
            clusters += [int(v["cluster_id"]) for v in (data.get("faces") or {}).values()
                         if isinstance(v, dict) and v.get("cluster_id") is not None]
        except (ValueError, TypeError, AttributeError, IndexError, KeyError):
            continue  # a damaged record names nothing we can trust; undo skips it too
        for table, ids in (("faces", faces), ("people", people), ("clusters", clusters)):
            top[table] = max([top[table], *ids])
    return top


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        marks = _ids_in_history(conn)
        for table in TABLES:
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
                pass
        for table in TABLES:
            mark = max(conn.execute(sa.text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar() or 0,
                       marks.get(table, 0))
            conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t"), {"t": table})
            conn.execute(sa.text("INSERT INTO sqlite_sequence(name, seq) VALUES (:t, :m)"), {"t": table, "m": mark})
    taken = {name for (name,) in conn.execute(sa.text("SELECT name FROM people"))}
    for pid, name in list(conn.execute(sa.text("SELECT id, name FROM people"))):
        clean = _clean(name)
        if clean and clean != name and clean not in taken:
            conn.execute(sa.text("UPDATE people SET name = :n WHERE id = :i"), {"n": clean, "i": pid})
            taken.discard(name)
            taken.add(clean)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for table in TABLES:
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": False}):
                pass
