"""Small HTML helpers: escaping, the page frame, tables, numbers, pagination and chart slots.

Every value that reaches a page goes through ``esc`` (or a formatter that calls it): strategy
names, parameters and error texts come from producers and must not become markup.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from html import escape
from typing import Any, Iterable, Sequence
from urllib.parse import quote, urlencode

NAV = (("/strategies", "Strategies"), ("/discovery", "Discovery runs"), ("/models", "Training & models"),
       ("/pipeline", "Pipeline health"))


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:+.{digits}%}"


def when(value: datetime | date | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.isoformat()


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def link(path: str, text: Any) -> str:
    return f'<a href="{esc(path)}">{esc(text)}</a>'


def strategy_link(strategy_id: str, text: Any | None = None) -> str:
    return link("/strategies/" + quote(strategy_id, safe=""), strategy_id if text is None else text)


def badge(status: str) -> str:
    return f'<span class="badge {esc(status)}">{esc(status)}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table of cells that are already HTML (escape values with ``esc`` first)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def pager(path: str, number: int, pages: int, total: int, what: str, **query: Any) -> str:
    def href(n: int) -> str:
        return path + "?" + urlencode({**{k: v for k, v in query.items() if v}, "page": n})

    prev = f'<a rel="prev" href="{esc(href(number - 1))}">← previous</a>' if number > 1 else ""
    nxt = f'<a rel="next" href="{esc(href(number + 1))}">next →</a>' if number < pages else ""
    return (f'<nav class="pager">{prev} <span>page {number} of {pages} ({total:,} {esc(what)})</span> '
            f'{nxt}</nav>')


def chart(chart_id: str, title: str, x_dates: Sequence[float], series: dict[str, Sequence[float | None]],
          y_label: str) -> str:
    """A slot ``static/charts.js`` draws into: x values are Unix seconds (uPlot shows them as dates)."""
    spec = {"title": title, "x": list(x_dates), "series": [{"label": k, "values": list(v)} for k, v in series.items()],
            "y_label": y_label}
    data = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")  # never closes the script element
    return (f'<figure class="chart" data-chart="{esc(chart_id)}"><figcaption>{esc(title)}</figcaption>'
            f'<script type="application/json" id="{esc(chart_id)}">{data}</script></figure>')


def frame(title: str, body: str, active: str = "") -> str:
    nav = " ".join(f'<a href="{p}"{" class=active" if p == active else ""}>{esc(t)}</a>' for p, t in NAV)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · edgeloop</title>
<link rel="stylesheet" href="/static/uPlot.min.css"><link rel="stylesheet" href="/static/style.css">
</head><body>
<header><strong>edgeloop</strong> <nav>{nav}</nav></header>
<main><h1>{esc(title)}</h1>
{body}
</main>
<footer>Read-only. Data: football-data.co.uk. Charts: uPlot (MIT).</footer>
<script src="/static/uPlot.iife.min.js"></script><script src="/static/charts.js"></script>
</body></html>
"""
