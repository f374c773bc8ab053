"""Review groups: the clustering's groups of unnamed faces, largest first. Name a group
(an existing name adds the faces to that person), or select faces and fix the group
first: remove them, move them to someone, split them off, or mark them "not a face".

A group whose faces sit near someone you named shows "It's <name>": one click names it
(:func:`organizer.questions.group_offers`). Above the groups, "Same person?" asks about two
named people whose faces are very close (:func:`organizer.questions.merge_questions`):
"Merge" makes them one, "Different" is remembered and never asked again. A name that would
give someone two faces of one photo shows the reason with "Do it anyway"."""
from __future__ import annotations

from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.development.base_component import Component

from organizer import browse, labelling, questions
from organizer.db import Library
from organizer.errors import InvalidRequest, OrganizerError
from organizer.ids import as_id

from .. import components as ui

PATH = "/review"
TITLE = "Review groups"
PAGE = "review"
GROUPS_PER_PAGE = 6
FACES_PER_PAGE = 120
#: "Same person?" questions shown at once (closest first)
MERGES_SHOWN = 3
ACTIONS = ("setaside", "move", "split", "notface")
NAMES = "review-names"


def _named(lib: Library, size: int, person_id: int) -> ui.Feedback:
    """What naming a group of ``size`` faces as the person ``person_id`` says, with a link."""
    person = browse.get_person(lib, person_id)
    return ui.Feedback(f"Named {ui.faces_text(size)} as {person.name}.",
                       link=(f"Open {person.name}", ui.href("/person", id=person_id)))


def name_group(lib: Library, cluster_id: int, name: str | None, *, force: bool = False) -> ui.Feedback:
    """Name every unnamed face of a group (the Name button / Enter in the name box)."""
    def run() -> ui.Feedback:
        size = browse.get_cluster(lib, cluster_id).size
        return _named(lib, size, labelling.name_cluster(lib, cluster_id, name or "", force=force))
    return ui.attempt(run)


def accept_offer(lib: Library, cluster_id: object, person_id: object, *, force: bool = False) -> ui.Feedback:
    """The "It's <name>" button: name the group as the person offered (by id, as shown)."""
    def run() -> ui.Feedback:
        cid, pid = as_id(cluster_id, "group id"), as_id(person_id, "person id")
        size = browse.get_cluster(lib, cid).size
        questions.accept_group_offer(lib, cid, pid, force=force)
        return _named(lib, size, pid)
    return ui.attempt(run)


def merge_pair(lib: Library, source_id: object, target_id: object, *, force: bool = False) -> ui.Feedback:
    """"Same person?" - Merge: the source person's faces join the target (whose name stays)."""
    def run() -> ui.Feedback:
        src, dst = as_id(source_id, "person id"), as_id(target_id, "person id")
        gone = browse.get_person(lib, src).name
        labelling.merge_people(lib, src, dst, force=force)
        person = browse.get_person(lib, dst)
        return ui.Feedback(f"Merged {gone} into {person.name}.",
                           link=(f"Open {person.name}", ui.href("/person", id=dst)))
    return ui.attempt(run)


def keep_apart(lib: Library, person_a: object, person_b: object) -> ui.Feedback:
    """"Same person?" - Different: remembered, never asked again."""
    def run() -> str:
        a, b = as_id(person_a, "person id"), as_id(person_b, "person id")
        labelling.keep_apart(lib, a, b)
        return f"{browse.get_person(lib, a).name} and {browse.get_person(lib, b).name} stay different people."
    return ui.attempt(run)


def retry(lib: Library, pending: dict[str, Any]) -> ui.Feedback:
    """"Do it anyway": the refused request of this page, forced."""
    kind = pending.get("kind")
    # as the browser sent them back (any JSON value): checked by the library
    cluster_id: Any = pending.get("cluster_id")
    if kind == "name":
        name = pending.get("name")
        return name_group(lib, cluster_id, name if isinstance(name, str) else None, force=True)
    if kind == "offer":
        return accept_offer(lib, cluster_id, pending.get("person_id"), force=True)
    if kind == "merge":
        return merge_pair(lib, pending.get("source"), pending.get("target"), force=True)
    if kind == "selection":
        return ui.retry_selection(lib, pending)
    return ui.Feedback("There is nothing to confirm any more.", ok=False)


# --- layout -------------------------------------------------------------------------------------

def _name_form(cluster: browse.ClusterSummary, offer: questions.GroupOffer | None) -> html.Div:
    children: list[Component] = [
        dcc.Input(id={"type": "review-input", "index": cluster.id}, type="text", list=NAMES, n_submit=0,
                  placeholder="Who is this?", autoComplete="off", className="input"),
        html.Button("Name", id={"type": "review-name", "index": cluster.id}, n_clicks=0,
                    className="btn btn-primary"),
    ]
    if offer is not None:
        near = (f"{len(offer.matching)} of its {ui.faces_text(offer.size)} are near {offer.person_name}"
                f" ({offer.confidence:.0%} sure)")
        children.append(html.Button(f"It's {offer.person_name}",
                                    id={"type": "review-accept", "index": cluster.id, "person": offer.person_id},
                                    n_clicks=0, className="btn btn-yes offer-btn", title=near))
    return html.Div(children, className="name-form")


def _group_card(cluster: browse.ClusterSummary, tiles: list[html.Div], offer: questions.GroupOffer | None,
                footer: Component | None = None) -> html.Section:
    title = [html.H2(f"{ui.faces_text(cluster.size)}"),
             html.Span(f"group {cluster.id}" + (" · made by you" if cluster.user_made else ""), className="muted")]
    return html.Section([
        html.Div([html.Div(title, className="card-title"), _name_form(cluster, offer)], className="card-head"),
        ui.face_grid(tiles),
        footer,
    ], className="card group-card" + (" has-offer" if offer else ""), id=f"review-group-{cluster.id}")


def _faces_row(face_ids: list[int]) -> html.Div:
    return html.Div([html.Img(src=ui.thumb_url(f), alt="", className="merge-face", draggable="false")
                     for f in face_ids], className="merge-faces")


def merge_card(lib: Library, q: questions.MergeQuestion) -> html.Section:
    """"Same person?" for two named people: both names and faces, Merge / Different. The one
    with fewer faces merges into the other."""
    a, b = browse.get_person(lib, q.person_a), browse.get_person(lib, q.person_b)
    target, source = (a, b) if a.face_count >= b.face_count else (b, a)
    pair = f"{q.person_a}:{q.person_b}"
    data: dict[str, Any] = {"data-source": str(source.id), "data-target": str(target.id)}
    side = lambda p, faces: html.Div([  # noqa: E731
        ui.avatar(p.cover_face_id, p.name), html.Div(p.name, className="merge-name"), _faces_row(faces),
    ], className="merge-side")
    return html.Section([
        html.H2("Same person?"),
        html.Div([side(a, q.faces_a), html.Div("=?", className="merge-vs"), side(b, q.faces_b)],
                 className="merge-row"),
        html.Div([
            html.Button(f"Merge into {target.name}", id={"type": "review-merge", "index": pair}, n_clicks=0,
                        className="btn btn-primary", title=f"{source.name}'s faces become {target.name}'s"),
            html.Button("Different people", id={"type": "review-apart", "index": pair}, n_clicks=0,
                        className="btn btn-light", title="Remembered: never asked again"),
        ], className="merge-actions"),
    ], className="card merge-card", id=f"review-merge-{q.person_a}-{q.person_b}", **data)


def merge_cards(lib: Library) -> list[ui.Child]:
    """The "Same person?" cards (closest pairs first). Filled in after the page is shown:
    comparing every named person's faces takes a second or more in a big library (1.2-4.5 s
    at 20,000 faces), so the groups never wait for it."""
    return [merge_card(lib, q) for q in questions.merge_questions(lib, limit=MERGES_SHOWN)]


def _merges_slot() -> html.Div:
    return html.Div([dcc.Store(id="review-merges-load", data=True), html.Div(id="review-merges", className="stack")],
                    className="merges-slot")


def _overview(lib: Library, page: int, total: int) -> list[ui.Child]:
    merges: list[ui.Child] = [_merges_slot()] if page == 1 else []
    if total == 0:
        return [*merges, ui.empty_state("All groups are named", "Every group of similar faces has a name. "
                                        "Faces that fit no group wait under Unassigned.",
                                        ("See unassigned faces", "/unassigned"))]
    page = ui.clamp_page(page, total, GROUPS_PER_PAGE)
    clusters = browse.list_clusters(lib, limit=GROUPS_PER_PAGE, offset=(page - 1) * GROUPS_PER_PAGE)
    offers = questions.group_offers(lib, [c.id for c in clusters])
    cards: list[ui.Child] = list(merges)
    for c in clusters:
        tiles = [ui.face_tile("review", fid) for fid in c.face_ids]
        footer: Component | None = None
        if c.size > len(c.face_ids):
            footer = dcc.Link(f"Show all {c.size} faces →", href=ui.href(PATH, cluster=c.id), className="card-more")
        cards.append(_group_card(c, tiles, offers.get(c.id), footer))
    return [*cards, ui.pager(PATH, {}, page, total, GROUPS_PER_PAGE)]


def _one_group(lib: Library, cluster_id: int, page: int) -> list[ui.Child]:
    cluster = browse.get_cluster(lib, cluster_id)
    back = dcc.Link("← All groups", href=PATH, className="back-link")
    if cluster.size == 0:
        return [back, ui.empty_state("This group is done", "Every face of it has a name now.")]
    page = ui.clamp_page(page, cluster.size, FACES_PER_PAGE)
    faces = browse.faces_in_cluster(lib, cluster_id, limit=FACES_PER_PAGE, offset=(page - 1) * FACES_PER_PAGE)
    tiles = [ui.face_info_tile("review", f) for f in faces]
    return [back, _group_card(cluster, tiles, questions.group_offer(lib, cluster_id)),
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
        ui.confirm_slot(PAGE),
        html.Div(body, className="stack"),
        ui.selection_bar("review", ACTIONS, NAMES),
    ], className="with-selbar")


# --- callbacks ----------------------------------------------------------------------------------

def _pair(index: object) -> tuple[int, int]:
    """The two person ids of a "Same person?" button's index ("a:b")."""
    a, sep, b = str(index).partition(":")
    if not (sep and a.isascii() and a.isdigit() and b.isascii() and b.isdigit() and len(a) < 20 and len(b) < 20):
        raise InvalidRequest(f"not a pair of people: {str(index)[:40]!r}")
    return as_id(int(a), "person id"), as_id(int(b), "person id")


def register(app: Dash, lib: Library) -> None:
    ui.register_autocomplete(app, lib, NAMES, Input({"type": "review-input", "index": ALL}, "value"),
                             Input("review-sel-name", "value"))
    ui.register_selection(app, lib, "review", ACTIONS, confirm=True)
    ui.register_confirm(app, PAGE, lambda pending: retry(lib, pending))

    @app.callback(Output("review-merges", "children"), Input("review-merges-load", "data"))
    def _load_merges(_load: object) -> list[ui.Child]:
        try:
            return merge_cards(lib)
        except OrganizerError:  # a library that changed under the question: none shown
            return []

    @app.callback(*ui.confirm_outputs(PAGE),
                  Input({"type": "review-name", "index": ALL}, "n_clicks"),
                  Input({"type": "review-input", "index": ALL}, "n_submit"),
                  Input({"type": "review-accept", "index": ALL, "person": ALL}, "n_clicks"),
                  State({"type": "review-input", "index": ALL}, "value"),
                  State({"type": "review-input", "index": ALL}, "id"),
                  prevent_initial_call=True)
    def _name(_clicks: list[int | None], _submits: list[int | None], _accepts: list[int | None],
              values: list[str | None], ids: list[dict[str, Any]]) -> ui.ConfirmResult:
        if not ui.fired() or not isinstance(ctx.triggered_id, dict):
            return no_update, no_update, no_update, no_update
        # as the browser sent it (any JSON value): checked by the library, an unknown id is a message
        cluster_id: Any = ctx.triggered_id.get("index")
        if ctx.triggered_id["type"] == "review-accept":
            person_id = ctx.triggered_id.get("person")
            return ui.respond_or_ask(PAGE, accept_offer(lib, cluster_id, person_id),
                                     {"kind": "offer", "cluster_id": cluster_id, "person_id": person_id})
        # one id per value in any request Dash makes; a hand-made request with lists of
        # different lengths names only the pairs it has, as before
        by_cluster = {i["index"]: v for i, v in zip(ids, values, strict=False)}
        name = by_cluster.get(cluster_id)
        return ui.respond_or_ask(PAGE, name_group(lib, cluster_id, name),
                                 {"kind": "name", "cluster_id": cluster_id, "name": name})

    @app.callback(*ui.confirm_outputs(PAGE),
                  Input({"type": "review-merge", "index": ALL}, "n_clicks"),
                  Input({"type": "review-apart", "index": ALL}, "n_clicks"),
                  State({"type": "review-merge", "index": ALL}, "id"),
                  prevent_initial_call=True)
    def _same_person(_merges: list[int | None], _apart: list[int | None],
                     _ids: list[dict[str, Any]]) -> ui.ConfirmResult:
        if not ui.fired() or not isinstance(ctx.triggered_id, dict):
            return no_update, no_update, no_update, no_update
        try:
            a, b = _pair(ctx.triggered_id.get("index"))
        except InvalidRequest as exc:
            return ui.respond_or_ask(PAGE, ui.Feedback(str(exc), ok=False), {})
        if ctx.triggered_id["type"] == "review-apart":
            return ui.respond_or_ask(PAGE, keep_apart(lib, a, b), {})
        source, target = merge_direction(lib, a, b)
        return ui.respond_or_ask(PAGE, merge_pair(lib, source, target),
                                 {"kind": "merge", "source": source, "target": target})


def merge_direction(lib: Library, a: object, b: object) -> tuple[object, object]:
    """(source, target) of "Merge": the person with fewer faces joins the other, as the
    button says; ids that are not people are passed on for the library to refuse."""
    try:
        pa, pb = browse.get_person(lib, as_id(a, "person id")), browse.get_person(lib, as_id(b, "person id"))
    except OrganizerError:
        return a, b
    return (pb.id, pa.id) if pa.face_count >= pb.face_count else (pa.id, pb.id)
