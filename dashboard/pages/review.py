"""Review groups: the clustering's groups of unnamed faces, largest first. Name a group
(an existing name adds the faces to that person), or select faces and fix the group
first: remove them, move them to someone, split them off, or mark them "not a face"."""
from __future__ import annotations

from typing import Any

from dash import ALL, Dash, Input, State, ctx, dcc, html, no_update
from dash.development.base_component import Component

from organizer import browse, labelling
from organizer.db import Library

from .. import components as ui

PATH = "/review"
TITLE = "Review groups"
GROUPS_PER_PAGE = 6
FACES_PER_PAGE = 120
ACTIONS = ("setaside", "move", "split", "notface")
NAMES = "review-names"


def name_group(lib: Library, cluster_id: int, name: str | None) -> ui.Feedback:
    """Name every unnamed face of a group (the Name button / Enter in the name box)."""
    def run() -> ui.Feedback:
        size = browse.get_cluster(lib, cluster_id).size
        pid = labelling.name_cluster(lib, cluster_id, name or "")
        person = browse.get_person(lib, pid)
        return ui.Feedback(f"Named {ui.faces_text(size)} as {person.name}.",
                           link=(f"Open {person.name}", ui.href("/person", id=pid)))
    return ui.attempt(run)


def accept_group_suggestion(lib: Library, cluster_id: int) -> ui.Feedback:
    """The "It's <name>" button: name the group after the person the machine suggests."""
    def run() -> ui.Feedback | str:
        summary = browse.get_cluster(lib, cluster_id)
        if not summary.suggested_person_name:
            return ui.Feedback("This group has no suggestion any more.", ok=False)
        return name_group(lib, cluster_id, summary.suggested_person_name)
    return ui.attempt(run)


def _name_form(cluster: browse.ClusterSummary) -> html.Div:
    children: list[Component] = [
        dcc.Input(id={"type": "review-input", "index": cluster.id}, type="text", list=NAMES, n_submit=0,
                  placeholder="Who is this?", autoComplete="off", className="input"),
        html.Button("Name", id={"type": "review-name", "index": cluster.id}, n_clicks=0,
                    className="btn btn-primary"),
    ]
    if cluster.suggested_person_name:
        pct = f" ({cluster.confidence:.0%})" if cluster.confidence is not None else ""
        children.append(html.Button(f"It's {cluster.suggested_person_name}{pct}",
                                    id={"type": "review-accept", "index": cluster.id}, n_clicks=0,
                                    className="btn btn-light", title="Name the group after the suggested person"))
    return html.Div(children, className="name-form")


def _group_card(cluster: browse.ClusterSummary, tiles: list[html.Div], footer: Component | None = None) -> html.Section:
    title = [html.H2(f"{ui.faces_text(cluster.size)}"),
             html.Span(f"group {cluster.id}" + (" · made by you" if cluster.user_made else ""), className="muted")]
    return html.Section([
        html.Div([html.Div(title, className="card-title"), _name_form(cluster)], className="card-head"),
        ui.face_grid(tiles),
        footer,
    ], className="card group-card", id=f"review-group-{cluster.id}")


def _overview(lib: Library, page: int, total: int) -> list[ui.Child]:
    if total == 0:
        return [ui.empty_state("All groups are named", "Every group of similar faces has a name. "
                               "Faces that fit no group wait under Unassigned.",
                               ("See unassigned faces", "/unassigned"))]
    page = ui.clamp_page(page, total, GROUPS_PER_PAGE)
    clusters = browse.list_clusters(lib, limit=GROUPS_PER_PAGE, offset=(page - 1) * GROUPS_PER_PAGE)
    cards: list[ui.Child] = []
    for c in clusters:
        tiles = [ui.face_tile("review", fid) for fid in c.face_ids]
        footer: Component | None = None
        if c.size > len(c.face_ids):
            footer = dcc.Link(f"Show all {c.size} faces →", href=ui.href(PATH, cluster=c.id), className="card-more")
        cards.append(_group_card(c, tiles, footer))
    return [*cards, ui.pager(PATH, {}, page, total, GROUPS_PER_PAGE)]


def _one_group(lib: Library, cluster_id: int, page: int) -> list[ui.Child]:
    cluster = browse.get_cluster(lib, cluster_id)
    back = dcc.Link("← All groups", href=PATH, className="back-link")
    if cluster.size == 0:
        return [back, ui.empty_state("This group is done", "Every face of it has a name now.")]
    page = ui.clamp_page(page, cluster.size, FACES_PER_PAGE)
    faces = browse.faces_in_cluster(lib, cluster_id, limit=FACES_PER_PAGE, offset=(page - 1) * FACES_PER_PAGE)
    tiles = [ui.face_info_tile("review", f) for f in faces]
    return [back, _group_card(cluster, tiles),
            ui.pager(PATH, {"cluster": cluster_id}, page, cluster.size, FACES_PER_PAGE)]


def layout(lib: Library, **query: str) -> html.Div:
    page = ui.page_arg(query)
    cluster_id = ui.int_arg(query, "cluster")
    total = browse.count_clusters(lib)
    body = _one_group(lib, cluster_id, page) if cluster_id else _overview(lib, page, total)
    return html.Div([
        ui.page_header("Review groups",
                       f"{total} group{'s' if total != 1 else ''} of similar faces without a name, largest first. "
                       "Name a group, or select faces that do not belong and fix them first."),
        ui.names_datalist(NAMES),
        html.Div(body, className="stack"),
        ui.selection_bar("review", ACTIONS, NAMES),
    ], className="with-selbar")


def register(app: Dash, lib: Library) -> None:
    ui.register_autocomplete(app, lib, NAMES, Input({"type": "review-input", "index": ALL}, "value"),
                             Input("review-sel-name", "value"))
    ui.register_selection(app, lib, "review", ACTIONS)

    @app.callback(*ui.action_outputs(),
                  Input({"type": "review-name", "index": ALL}, "n_clicks"),
                  Input({"type": "review-input", "index": ALL}, "n_submit"),
                  Input({"type": "review-accept", "index": ALL}, "n_clicks"),
                  State({"type": "review-input", "index": ALL}, "value"),
                  State({"type": "review-input", "index": ALL}, "id"),
                  prevent_initial_call=True)
    def _name(_clicks: list[int | None], _submits: list[int | None], _accepts: list[int | None],
              values: list[str | None], ids: list[dict[str, Any]]) -> ui.ActionResult:
        if not ui.fired() or not isinstance(ctx.triggered_id, dict):
            return no_update, no_update
        # as the browser sent it (any JSON value): checked by the library, an unknown id is a message
        cluster_id: Any = ctx.triggered_id.get("index")
        if ctx.triggered_id["type"] == "review-accept":
            return ui.respond(accept_group_suggestion(lib, cluster_id))
        # one id per value in any request Dash makes; a hand-made request with lists of
        # different lengths names only the pairs it has, as before
        by_cluster = {i["index"]: v for i, v in zip(ids, values, strict=False)}
        return ui.respond(name_group(lib, cluster_id, by_cluster.get(cluster_id)))
