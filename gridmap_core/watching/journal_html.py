"""The HTML of ``gridmap watch``: a map's page (summary, failures, a page of the job
table), a job's page, and the page that says why the journal cannot be read.

Pages are drawn on the server, whole, from what :mod:`journal_view` read: they work
without scripts, and ``journal.js`` only refreshes the figures on top. Every text
from the journal (names, hosts, causes, tracebacks) is escaped; no style or script
is inline, as the Content-Security-Policy allows neither.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from gridmap_core.journal.store import TaskRow
from gridmap_core.watching.journal_view import STATES, Summary, last_line
from gridmap_core.watching.throughput import duration

__all__ = ["error_page", "job_page", "map_page"]

# The progress bar's order, ended jobs first, and each state's colour.
BAR_ORDER = ("succeeded", "failed", "dead", "cancelled", "running", "queued")
COLOURS = {"succeeded": "#2a8a2a", "failed": "#c0392b", "dead": "#7b241c",
           "cancelled": "#a67c00", "running": "#1f6fb4", "queued": "#d0d0d0"}
BAR_WIDTH, BAR_HEIGHT = 640, 18


def _head(title: str) -> str:
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"referrer\" content=\"no-referrer\">\n"
            f"<title>{escape(title)}</title>\n"
            "<link rel=\"stylesheet\" href=\"/static/status.css\">\n"
            "<link rel=\"stylesheet\" href=\"/static/journal.css\">\n"
            "<script src=\"/static/journal.js\" defer></script>\n</head>\n")


def when(at: float | None) -> str:
    """A time on the watching host's clock, its zone named."""
    if at is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(at))


def link(path: str, token: str, **query: str | int) -> str:
    """``path`` with the token and ``query``, escaped for an attribute."""
    return escape(f"{path}?{urlencode({'token': token, **query})}")


def job_link(row: TaskRow, token: str) -> str:
    return (f'<a href="{link(f"/job/{row.position}", token)}">'
            f"{escape(row.name)} #{row.position}</a>")


def progress_bar(summary: Summary) -> str:
    """The jobs of each state as a share of one bar (SVG: no inline style needed)."""
    total = max(summary.total, 1)
    parts = [f'<svg id="progress" xmlns="http://www.w3.org/2000/svg" width="{BAR_WIDTH}" '
             f'height="{BAR_HEIGHT}" viewBox="0 0 {BAR_WIDTH} {BAR_HEIGHT}" role="img" '
             f'aria-label="{summary.ended} of {summary.total} jobs ended">']
    x = 0.0
    for state in BAR_ORDER:
        width = BAR_WIDTH * summary.counts.get(state, 0) / total
        parts.append(f'<rect id="bar-{state}" x="{x:.2f}" y="0" width="{width:.2f}" '
                     f'height="{BAR_HEIGHT}" fill="{COLOURS[state]}"/>')
        x += width
    parts.append("</svg>")
    return "".join(parts)


def _header(summary: Summary, token: str) -> str:
    record = summary.map
    ended = record.ended is not None
    return (
        f'<header>\n<h1 id="title"><a href="{link("/", token)}">{escape(record.name)}</a>'
        f"</h1>\n<dl class=\"map\">"
        f'<dt>Map</dt><dd id="map-id">{escape(record.id)}</dd>'
        f'<dt>Backend</dt><dd id="backend">{escape(record.backend)}</dd>'
        f'<dt>State</dt><dd id="state" data-state="{escape(record.state)}">'
        f"{escape(record.state)}</dd>"
        f'<dt>Created</dt><dd id="created">{escape(when(record.created))}</dd>'
        f'<dt id="seconds-label">{"Wall time" if ended else "Age"}</dt>'
        f'<dd id="seconds">{duration(summary.seconds)}</dd>'
        f'<dt>Submitted from</dt><dd id="host">{escape(record.host)} '
        f"(process {record.pid})</dd>"
        f'<dt>Monitor</dt><dd id="monitor">{escape(summary.monitor or "none: the map ended")}'
        "</dd></dl>\n"
        '<p id="connection" class="connection"></p>\n</header>\n')


def _counts(summary: Summary, token: str) -> str:
    cells = "".join(
        f'<tr class="count" data-state="{state}"><th>'
        f'<a href="{link("/", token, state=state)}">{state}</a></th>'
        f'<td class="number" id="count-{state}">{summary.counts.get(state, 0)}</td></tr>'
        for state in STATES)
    return (f'<section id="counts">\n<h2><span id="done">{summary.ended}</span> of '
            f'<span id="total">{summary.total}</span> jobs ended</h2>\n'
            f"{progress_bar(summary)}\n<table class=\"counts\">{cells}</table>\n"
            f'<img id="throughput" class="chart" alt="jobs ended over time" width="640" '
            f'height="240" src="{link("/api/throughput.svg", token)}">\n</section>\n')


def _failures(failed: Sequence[tuple[TaskRow, str]], summary: Summary, token: str) -> str:
    count = summary.failures
    if not count:
        return '<section id="failures"><h2>Failures</h2><p>none</p></section>\n'
    items = []
    for row, error in failed:
        cause = (row.cause or "") if row.state == "dead" else last_line(error)
        items.append(
            f'<li id="failure-{row.position}" data-state="{escape(row.state)}">'
            f"{job_link(row, token)} "
            f'<span class="state">{escape(row.state)}</span>'
            f'{f" on {escape(row.host)}" if row.host else ""}: '
            f'<span class="cause">{escape(cause or "no cause recorded")}</span></li>')
    more = ""
    if count > len(failed):
        more = (f'<p>{len(failed)} of {count} shown: <a href="'
                f'{link("/", token, state="dead,failed")}">all failures</a></p>')
    return (f'<section id="failures"><h2>Failures ({count})</h2>\n<ol>'
            + "\n".join(items) + f"</ol>\n{more}</section>\n")


def _table(rows: Sequence[TaskRow], page: int, pages: int, states: tuple[str, ...],
           token: str) -> str:
    lines = []
    for row in rows:
        lines.append(
            f'<tr id="job-{row.position}" data-state="{escape(row.state)}">'
            f'<td class="number index">{row.position}</td>'
            f'<td class="name">{job_link(row, token)}</td>'
            f'<td class="state">{escape(row.state)}</td><td class="host">{escape(row.host)}</td>'
            f'<td class="id">{escape(row.job_id)}</td>'
            f'<td class="number">{row.attempt}</td><td class="number">{row.resubmits}</td>'
            f'<td class="when">{escape(when(row.ended))}</td>'
            f'<td class="cause">{escape(row.cause or "")}</td></tr>')
    shown = ",".join(states)
    filters = {"state": shown} if shown else {}
    nav = [f'<span id="page">page {page} of {pages}</span>']
    if page > 1:
        nav.insert(0, f'<a id="previous" href="{link("/", token, page=page - 1, **filters)}">'
                      "previous</a>")
    if page < pages:
        nav.append(f'<a id="next" href="{link("/", token, page=page + 1, **filters)}">next</a>')
    title = f"Jobs ({escape(shown)})" if shown else "Jobs"
    if shown:
        title += f' <a class="filter" href="{link("/", token)}">show all</a>'
    return (f'<section id="table"><h2>{title}</h2>\n<nav class="pages">{" ".join(nav)}</nav>\n'
            '<table id="jobs"><thead><tr><th>#</th><th>Job</th><th>State</th><th>Host</th>'
            "<th>Job id</th><th>Attempt</th><th>Resubmits</th><th>Ended</th>"
            "<th>Cause of death</th></tr></thead>\n<tbody>" + "\n".join(lines)
            + "</tbody></table>\n"
            f'<nav class="pages">{" ".join(nav)}</nav>\n'
            '<p class="note">The figures on top refresh every two seconds; reload for the '
            "latest rows.</p></section>\n")


def map_page(summary: Summary, failed: Sequence[tuple[TaskRow, str]], rows: Sequence[TaskRow],
             page: int, pages: int, states: tuple[str, ...], token: str) -> str:
    """A map's page: its summary, its failures, and page ``page`` of its jobs."""
    return (_head(f"gridmap: {summary.map.name}") + '<body data-view="map">\n'
            + _header(summary, token) + "<main>\n" + _counts(summary, token)
            + _failures(failed, summary, token) + _table(rows, page, pages, states, token)
            + "</main>\n</body>\n</html>\n")


def job_page(summary: Summary, row: TaskRow, transitions: Sequence[tuple[float, str, int, str,
             str]], error: str, token: str) -> str:
    """One job: its fields, its transitions, and the traceback it raised."""
    fields = [("Job", f"{escape(row.name)} #{row.position}"), ("Task id", str(row.id)),
              ("State", f'<span id="job-state">{escape(row.state)}</span>'),
              ("Attempt", str(row.attempt)), ("Resubmits", str(row.resubmits)),
              ("Scheduler job", escape(row.job_id)), ("Host", escape(row.host)),
              ("Started", escape(when(row.started))), ("Ended", escape(when(row.ended)))]
    if row.cause:
        fields.append(("Cause of death", f'<span id="cause">{escape(row.cause)}</span>'))
    if row.kind:
        fields.append(("Death kind", escape(row.kind)))
    if row.state == "succeeded" or error:
        fields.append(("Result", "in the journal" if row.result == "journal"
                       else escape(row.result or "")))
    listing = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in fields)
    steps = "".join(
        f"<tr><td>{escape(when(at))}</td><td>{escape(state)}</td><td class=\"number\">"
        f"{attempt}</td><td>{escape(job_id)}</td><td>{escape(detail)}</td></tr>"
        for at, state, attempt, job_id, detail in transitions)
    traceback = (f'<h2>Error</h2><p id="error">{escape(last_line(error))}</p>'
                 f'<pre id="traceback">{escape(error)}</pre>\n') if error else ""
    return (_head(f"gridmap: {row.name} #{row.position} of {summary.map.name}")
            + '<body data-view="job">\n' + _header(summary, token)
            + f'<main>\n<p><a id="back" href="{link("/", token)}#job-{row.position}">'
            f"back to the map</a></p>\n<dl class=\"job\">{listing}</dl>\n{traceback}"
            '<h2>Transitions</h2>\n<table id="transitions"><thead><tr><th>When</th>'
            "<th>State</th><th>Attempt</th><th>Job id</th><th>Detail</th></tr></thead>"
            f"<tbody>{steps}</tbody></table>\n</main>\n</body>\n</html>\n")


def error_page(message: str) -> str:
    """What the page shows when the journal cannot be read: the error, which names
    the file, and that the page tries again at each reload."""
    return (_head("gridmap: the map's journal cannot be read") + '<body data-view="error">\n'
            '<h1>The map\'s journal cannot be read</h1>\n'
            f'<p id="error">{escape(message)}</p>\n'
            "<p>The page reads the journal again each time it is loaded.</p>\n"
            "</body>\n</html>\n")
