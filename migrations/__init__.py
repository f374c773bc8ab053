"""Alembic migrations of the library schema (shipped as a package so installed copies
can upgrade old libraries on open)."""
