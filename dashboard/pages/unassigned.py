"""Unassigned: every face that belongs to nobody yet (grouped or not), paged. Select
faces to name them, group them, or mark them "not a face"."""
from __future__ import annotations

from dash import Dash, Input, html
from dash.development.base_component import Component

from organizer import browse
from organizer.db import Library

from .. import components as ui

PATH = "/unassigned"
TITLE = "Unassigned"
FACES_PER_PAGE = 150
ACTIONS = ("assign", "split", "notface")
NAMES = "unassigned-names"


def layout(lib: Library, **query: str) -> html.Div:
    total = browse.count_unassigned(lib)
    page = ui.clamp_page(ui.page_arg(query), total, FACES_PER_PAGE)
    faces = browse.unassigned_faces(lib, limit=FACES_PER_PAGE, offset=(page - 1) * FACES_PER_PAGE)
    if faces:
        body: Component = ui.face_grid([ui.face_info_tile("unassigned", f, show_person=True) for f in faces])
    else:
        body = ui.empty_state("Nothing left", "Every face has a person (or was marked as not a face).")
    return html.Div([
        ui.page_header("Unassigned faces",
                       f"{ui.faces_text(total)} without a person, grouped faces first. "
                       "A name with “?” is the machine's guess, not yet confirmed."),
        ui.names_datalist(NAMES),
        body,
        ui.pager(PATH, {}, page, total, FACES_PER_PAGE),
        ui.selection_bar("unassigned", ACTIONS, NAMES),
    ], className="with-selbar")


def register(app: Dash, lib: Library) -> None:
    ui.register_autocomplete(app, lib, NAMES, Input("unassigned-sel-name", "value"))
    ui.register_selection(app, lib, "unassigned", ACTIONS)
