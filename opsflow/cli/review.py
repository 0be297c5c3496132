"""opsflow review: lessons learned — reviews of runs and events, their timeline, action items, export.

Who did it: ``--by``, else ``$OPSFLOW_USER``, else the login user at this host (as ``opsflow approve``).
Every change is in the audit log (``review_create``, ``review_edit``, ``review_close``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from opsflow.cli.options import db_opt, parse_since
from opsflow.errors import UsageError
from opsflow.textsafe import for_terminal as safe

by_opt = click.option("--by", default=None, metavar="WHO", help="who does it [default: $OPSFLOW_USER, else you]")


def actor(by: str | None) -> str:
    from opsflow.planning import who

    return (by or "").strip() or os.environ.get("OPSFLOW_USER", "").strip() or who()


def _store(db: str | None) -> Any:
    from opsflow.store import open_store

    return open_store(db, reap=False)


def _review(store: Any, review_id: str) -> dict[str, Any]:
    review: dict[str, Any] | None = store.get_review(review_id)
    if review is None:
        raise UsageError(f"no review {review_id} (see `opsflow review list`)")
    return review


@click.group()
def review() -> None:
    """Lessons learned: reviews of runs and events, with a timeline and action items."""


@review.command("new")
@click.argument("ref", metavar="RUN_ID|EVENT_ID")
@click.option("--title", default=None, help="the review's title [default: from the run or event]")
@by_opt
@db_opt
def new(ref: str, title: str | None, by: str | None, db: str | None) -> None:
    """Open a review of a run (and the event that started it) or of an event (and the runs it started)."""
    store = _store(db)
    try:
        run = store.get_run(ref)
        if run is not None:
            event = store.event_for_run(run["id"])
            runs, events = [run], [event["id"]] if event else []
            default = f"{run['runbook']}: run {run['id']} {run['status']}"
        else:
            event = store.event_with_actions(ref)
            if event is None:
                raise UsageError(f"no run or event {ref!r} (see `opsflow history` and `opsflow events`)")
            ids = list(dict.fromkeys(a["run_id"] for a in event["actions"] if a.get("run_id")))
            runs = [r for rid in ids if (r := store.get_run(rid)) is not None]
            events = [event["id"]]
            where = f" on {event['host']}" if event.get("host") else ""
            default = f"event {event['name']}{where}"
        links = [{"title": f"runbook {r['runbook']} version", "url": f"sha256:{r['runbook_hash']}", "kind": "runbook"}
                 for r in {r["runbook_hash"]: r for r in runs if r.get("runbook_hash")}.values()]
        from opsflow.reviews.doc import empty_doc

        who = actor(by)
        created = store.create_review((title or "").strip() or default, who,
                                      runbooks=list(dict.fromkeys(r["runbook"] for r in runs)),
                                      runs=[r["id"] for r in runs], events=events, doc={**empty_doc(), "links": links})
        store.audit(who, "review_create", created["id"],
                    f"runs {', '.join(created['runs']) or '-'}; events {', '.join(created['events']) or '-'}")
    finally:
        store.close()
    click.echo(created["id"])


def _due(store: Any, since: float, runbook: str | None) -> list[dict[str, Any]]:
    """What is due: failed remediations and window overrides, and — with a services directory — the
    objectives breached since then (as the KPI report finds them)."""
    from opsflow.slo.loader import load_configured

    if not load_configured().services:
        from opsflow.reviews.due import find_due

        return find_due(store, since=since, runbook=runbook)
    import time

    from opsflow.reports.kpi import build_report

    items: list[dict[str, Any]] = build_report(store, since, time.time())["reviews_due"]
    return [d for d in items if runbook is None or d.get("runbook") == runbook]


@review.command("list")
@click.option("--state", type=click.Choice(["open", "closed", "all"]), default="open", show_default=True)
@click.option("--runbook", default=None, help="only reviews of this runbook (its name)")
@click.option("--due", is_flag=True, help="list what is due for a review instead (nothing is written)")
@click.option("--since", default="30d", show_default=True, help="with --due: how far back, e.g. 7d, 12w")
@click.option("--json", "as_json", is_flag=True)
@db_opt
def list_cmd(state: str, runbook: str | None, due: bool, since: str, as_json: bool, db: str | None) -> None:
    """Reviews newest first, with their open action items; or (--due) failures that call for one."""
    store = _store(db)
    try:
        if due:
            items = _due(store, parse_since(since), runbook)
        else:
            rows = store.list_reviews(state=None if state == "all" else state, runbook=runbook)
    finally:
        store.close()
    from opsflow.reviews.doc import open_actions
    from opsflow.reviews.render import when

    if due:
        if as_json:
            click.echo(json.dumps(items, indent=2, default=str))
        elif not items:
            click.echo("nothing due for a review")
        for d in [] if as_json else items:
            click.echo(safe(f"{when(d['at'])}  {d['kind']:<18} {d['what']}  "
                            f"(opsflow review new {d['run_id'] or '<run or event id>'})"))
        return
    for r in rows:
        r["open_actions"] = len(open_actions(r["doc"]))
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo(f"no {'' if state == 'all' else state + ' '}reviews")
    for r in rows:
        click.echo(safe(f"{r['id']:<9} {r['state']:<6} {when(r['created_at'])}  {', '.join(r['runbooks']) or '-':<24} "
                        f"{r['open_actions']} open action(s)  {r['title']}"))


@review.command("show")
@click.argument("review_id")
@click.option("--json", "as_json", is_flag=True, help="the review and its timeline as JSON")
@click.option("--markdown", is_flag=True, help="as Markdown (as `opsflow review export`)")
@db_opt
def show(review_id: str, as_json: bool, markdown: bool, db: str | None) -> None:
    """One review: metadata, document, timeline of its runs and events, action items, links."""
    from opsflow.reviews import render
    from opsflow.reviews.timeline import gather

    store = _store(db)
    try:
        r = _review(store, review_id)
        timeline = gather(store, r)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({**r, "timeline": timeline}, indent=2, default=str))
    elif markdown:
        click.echo(safe(render.to_markdown(r, timeline)), nl=False)
    else:
        click.echo(render.to_text(r, timeline))


@review.command("edit")
@click.argument("review_id")
@click.option("--title", default=None)
@click.option("--summary", default=None, help="what happened (replaces)")
@click.option("--impact", default=None, help="who or what was affected, how long (replaces)")
@click.option("--factor", multiple=True, help="a contributing factor (repeatable; added)")
@click.option("--went-well", multiple=True, help="something that went well (repeatable; added)")
@click.option("--takeaway", multiple=True, help="a takeaway (repeatable; added)")
@click.option("--action", "action_text", default=None, metavar="TEXT", help="a new action item (with --owner, --due)")
@click.option("--owner", default=None, help="who owns the new action item")
@click.option("--due", default=None, metavar="YYYY-MM-DD", help="when the new action item is due")
@click.option("--done", multiple=True, type=int, metavar="N", help="mark action item N done (repeatable)")
@click.option("--link", multiple=True, metavar="TITLE=URL", help="a link (repeatable)")
@click.option("--ticket", default=None, metavar="CHG-123", help="the change ticket")
@click.option("--from-file", "from_file", type=click.Path(dir_okay=False), default=None,
              help="a YAML file with any of summary, impact, contributing_factors, went_well, takeaways, "
                   "action_items [{text, owner, due}], links [{title, url}], ticket, done [N]")
@by_opt
@db_opt
def edit(review_id: str, title: str | None, summary: str | None, impact: str | None, factor: tuple[str, ...],
         went_well: tuple[str, ...], takeaway: tuple[str, ...], action_text: str | None, owner: str | None,
         due: str | None, done: tuple[int, ...], link: tuple[str, ...], ticket: str | None, from_file: str | None,
         by: str | None, db: str | None) -> None:
    """Write the review: text fields replace, list entries and action items are added."""
    from opsflow.reviews import doc as rdoc

    if action_text is None and (owner or due):
        raise UsageError("--owner and --due belong to a new action item: give --action TEXT with them")
    edits = []
    if from_file:
        import yaml

        try:
            data = yaml.safe_load(Path(from_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"--from-file {from_file}: cannot read it: {exc}") from exc
        edits.append(rdoc.edit_from_mapping(data, from_file))
    edits.append(rdoc.Edit(title=title, summary=summary, impact=impact, contributing_factors=list(factor),
                           went_well=list(went_well), takeaways=list(takeaway),
                           actions=[rdoc.action(action_text, owner, due)] if action_text is not None else [],
                           done=list(done), links=[rdoc.parse_link(x) for x in link], ticket=ticket))
    if all(e.empty() for e in edits):
        raise UsageError("nothing to change: give --summary, --impact, --factor, --action … or --from-file "
                         "(see opsflow review edit --help)")
    who = actor(by)
    at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    store = _store(db)
    try:
        r = _review(store, review_id)
        document, changed, new_title = r["doc"], [], None
        for e in edits:
            document, more = rdoc.apply_edit(document, e, who, at)
            changed += more
            if e.title and e.title.strip() and e.title.strip() != r["title"]:
                new_title = e.title.strip()
                changed.append("title")
        if not changed:
            click.echo(f"{r['id']}: nothing changed")
            return
        store.update_review(r["id"], who, title=new_title, doc=document)
        store.audit(who, "review_edit", r["id"], "; ".join(changed))
    finally:
        store.close()
    click.echo(safe(f"{r['id']}: {'; '.join(changed)} (by {who})"))


@review.command("close")
@click.argument("review_id")
@by_opt
@db_opt
def close(review_id: str, by: str | None, db: str | None) -> None:
    """Close a review (its open action items stay on record, and no longer show before runs)."""
    from opsflow.reviews.doc import open_actions

    who = actor(by)
    store = _store(db)
    try:
        r = _review(store, review_id)
        if r["state"] == "closed":
            raise UsageError(f"review {r['id']} is already closed (by {r['closed_by']})")
        store.update_review(r["id"], who, state="closed")
        left = open_actions(r["doc"])
        store.audit(who, "review_close", r["id"], f"{len(left)} action item(s) not done" if left else None)
    finally:
        store.close()
    note = f"; {len(left)} action item(s) not done yet" if left else ""
    click.echo(safe(f"{r['id']} closed by {who}{note}"))


@review.command("export")
@click.argument("review_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="write here [default: stdout]")
@db_opt
def export(review_id: str, output: str | None, db: str | None) -> None:
    """The review as Markdown: metadata, summary, impact, timeline, factors, action items, links."""
    from opsflow.reviews.render import to_markdown
    from opsflow.reviews.timeline import gather
    from opsflow.textsafe import for_terminal

    store = _store(db)
    try:
        r = _review(store, review_id)
        text = to_markdown(r, gather(store, r))
    finally:
        store.close()
    if output is None:
        sys.stdout.write(for_terminal(text))
        return
    try:
        Path(output).write_text(for_terminal(text))
    except OSError as exc:
        raise UsageError(f"-o {output}: cannot write it: {exc.strerror}") from exc
    click.echo(f"{r['id']} written to {output}", err=True)
