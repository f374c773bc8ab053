"""The Dash labelling UI: ``create_app(library)`` in :mod:`dashboard.app`."""
