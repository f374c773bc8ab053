"""faces record which engine computed their embedding

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09 12:00:00

``faces.embedding_engine`` names the code that turned the face chip into its 128 numbers:
``dlib`` (dlib-bin's own descriptor) or ``onnx-dlib-resnet-v1`` (the same network and
weights on onnxruntime, organizer.embedding). Both are one model - the engine reproduces
dlib's vectors to within 1e-6 (tests/test_embedding_engine.py) - so faces of both kinds are
clustered and compared together; the column is there so that a later, different model can
tell which faces it must re-embed. Every face made before this revision came from dlib.

SQLite adds the column in place (ALTER TABLE ADD COLUMN), so the AUTOINCREMENT flag of
revision 0003 and every row, label and thumbnail stay as they are. The downgrade rebuilds
the table (SQLite before 3.35 cannot drop a column) and keeps the flag;
``organizer.db.upgrade`` and migrations/env.py turn foreign keys off around it.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.add_column(sa.Column("embedding_engine", sa.String(32), nullable=False, server_default="dlib"))


def downgrade() -> None:
    kwargs = {"sqlite_autoincrement": True} if op.get_bind().dialect.name == "sqlite" else {}
    with op.batch_alter_table("faces", table_kwargs=kwargs) as batch:
        batch.drop_column("embedding_engine")
