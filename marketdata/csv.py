"""Parse football-data.co.uk match CSVs into typed ``Match`` records.

The quirks this handles (see ``data/football-data/README.md``):

* dates are day-first with two- or four-digit years (``13/08/05``, ``13/08/2005``);
* a ``Time`` column appears from 2019-20, so columns are found by name, never position;
* files from 2024-25 on start with a UTF-8 BOM (read as ``utf-8-sig``);
* mixed CRLF/LF line endings, blank ``,,,,`` rows and empty-named trailing columns;
* bookmaker columns come and go across seasons, so price sources are *discovered* from the
  header: every ``<code>H``, ``<code>D``, ``<code>A`` triple is one source.

A row that cannot be read (bad date, missing team, goals that are not integers, a result that
contradicts the goals) is reported as a ``Problem`` with file and line and skipped; the rest
of the file loads. A missing or non-numeric price is not a problem: that source is simply
absent for that selection.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from operator import itemgetter
from pathlib import Path
from typing import Callable, Iterable, Iterator

SELECTIONS = ("H", "D", "A")  # index 0, 1, 2 everywhere in marketdata and backtester
SELECTION_NAMES = ("home", "draw", "away")

# Market-wide columns under their old (Betbrain, to 2018-19) and new (from 2019-20) names.
SOURCE_ALIASES = {
    "BBAV": "AVG", "AVG": "AVG",
    "BBMX": "MAX", "MAX": "MAX",
    "AVGC": "AVGC", "MAXC": "MAXC",
}
# Columns that look like an H/D/A triple but are not 1X2 prices (asian handicap, half time).
_NOT_PRICES = {"BBAH", "BBMXAH", "BBAVAH", "HT", "FT"}

_TRIPLE = re.compile(r"^(?P<code>[A-Za-z0-9]+?)(?P<sel>[HDA])$")
_SEASON_IN_NAME = re.compile(r"(?P<start>(19|20)\d\d)-(?P<end>\d\d)")
_LEAGUE_IN_NAME = re.compile(r"^(?P<league>[A-Z]+\d*)_")


@dataclass(frozen=True, slots=True)
class Match:
    """One match as the CSV tells it. ``prices`` maps a source code to (home, draw, away)
    decimal odds, ``None`` where that source has no usable price."""

    league: str
    season: str  # "2019-20"
    date: date
    kickoff: time | None
    home_team: str
    away_team: str
    home_goals: int | None
    away_goals: int | None
    result: str | None  # "H", "D", "A"; None when the match is not played yet
    prices: dict[str, tuple[float | None, float | None, float | None]] = field(default_factory=dict)
    source_file: str = ""
    line: int = 0

    @property
    def event_id(self) -> str:
        return event_id(self.league, self.date, self.home_team, self.away_team)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(slots=True)
class ParseResult:
    matches: list[Match]
    problems: list[Problem]
    blank_rows: int = 0


_SLUG = re.compile(r"[^A-Za-z0-9]+")


def event_id(league: str, day: date, home_team: str, away_team: str) -> str:
    """The stable id of a match, e.g. ``E0-2019-08-09-Liverpool-Norwich``.

    Runs of characters other than letters and digits in team names become ``_``
    (``Man United`` → ``Man_United``, ``Nott'm Forest`` → ``Nott_m_Forest``) so the id is a
    plain token in URLs, Redis keys and logs. Every component (ML service, cache, backtester)
    must build ids with this function, never by hand.
    """
    return f"{league}-{day.isoformat()}-{_slug(home_team)}-{_slug(away_team)}"


@functools.lru_cache(maxsize=4096)  # a few hundred team names; ids are built per match, often
def _slug(name: str) -> str:
    return _SLUG.sub("_", name.strip()).strip("_")


def canonical_source(code: str) -> str:
    """``BbAv``/``Avg`` → ``AVG``, ``BbMx``/``Max`` → ``MAX``; bookmaker codes upper-cased
    (``B365``, ``PS`` = Pinnacle, ``PSC`` = Pinnacle closing, ``B365C`` = Bet365 closing)."""
    up = code.upper()
    return SOURCE_ALIASES.get(up, up)


def parse_date(text: str) -> date:
    """Day-first date with a two- or four-digit year."""
    return _parse_date(text.strip())


# A season file repeats each date (and price) text many times and strptime is slow: each text
# is parsed once per process (a cold process's first backtest parses whole seasons).
@functools.lru_cache(maxsize=65536)
def _parse_date(text: str) -> date:
    for fmt in ("%d/%m/%Y", "%d/%m/%y"):
        try:
            parsed = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if fmt == "%d/%m/%Y" and parsed.year < 1900:  # "13/08/05" read as year 5
            continue
        return parsed
    raise ValueError(f"date {text!r} is not dd/mm/yy or dd/mm/yyyy")


@functools.lru_cache(maxsize=65536)
def _price(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    # Decimal odds of 1 or less pay nothing back; they are data errors, not prices.
    return value if value > 1.0 and value < 10_000 else None


def _goals(text: str | None) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    value = float(text)  # "2.0" appears in pandas round-tripped files
    if value != int(value) or value < 0:
        raise ValueError(f"goals {text!r} are not a non-negative integer")
    return int(value)


def price_columns(header: list[str]) -> dict[str, tuple[str, str, str]]:
    """Source code → (home, draw, away) column names, for every complete triple in ``header``."""
    by_code: dict[str, dict[str, str]] = {}
    for name in header:
        m = _TRIPLE.match(name.strip())
        if m:
            by_code.setdefault(m["code"], {})[m["sel"]] = name
    out: dict[str, tuple[str, str, str]] = {}
    for code, cols in by_code.items():
        if len(cols) == 3 and code.upper() not in _NOT_PRICES:
            out[canonical_source(code)] = (cols["H"], cols["D"], cols["A"])
    return out


def _season_from_name(path: Path) -> str | None:
    m = _SEASON_IN_NAME.search(path.name)
    return f"{m['start']}-{m['end']}" if m else None


@functools.lru_cache(maxsize=4096)
def _kickoff(text: str) -> time:
    return datetime.strptime(text, "%H:%M").time()


def dates_of_file(path: Path) -> tuple[date, date] | None:
    """The dates a file named for a season (``E0_2019-20.csv``) can hold, with a margin: its
    matches are labelled with that season already, and a season that ran late (2019-20 into
    July) still ends the year after it starts. None when the name has no season."""
    m = _SEASON_IN_NAME.search(path.name)
    if not m:
        return None
    start = int(m["start"])
    return date(start, 1, 1), date(start + 1, 12, 31)


def season_of(day: date) -> str:
    """Season of a season's *first* match date (European seasons start July–August)."""
    start = day.year if day.month >= 6 else day.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


PriceTriples = dict[str, tuple[float | None, float | None, float | None]]


def _price_reader(prices: dict[str, tuple[str, str, str]]) -> Callable[[dict[str, str]], PriceTriples]:
    """Source → (home, draw, away) prices of a row, read by ``price_columns(header)``.

    A season file has 11–22 sources, so this reads ~35–65 prices a row, the largest part of a
    row's parse: one ``itemgetter`` and a ``map`` over the cached ``_price`` keep it in C."""
    if not prices:
        return lambda row: {}
    sources = tuple(prices)
    pick = itemgetter(*(col for cols in prices.values() for col in cols))

    def read(row: dict[str, str]) -> PriceTriples:
        values = map(_price, pick(row))
        return dict(zip(sources, zip(values, values, values)))
    return read


def _row_match(row: dict[str, str], read_prices: Callable[[dict[str, str]], PriceTriples], season: str | None,
               source_file: str, line: int) -> Match:
    league = (row.get("Div") or "").strip()
    home, away = (row.get("HomeTeam") or row.get("HT") or "").strip(), (row.get("AwayTeam") or row.get("AT") or "").strip()
    if not league:
        raise ValueError("Div is empty")
    if not home or not away:
        raise ValueError("home or away team is empty")
    day = parse_date(row.get("Date") or "")
    kickoff = None
    if (row.get("Time") or "").strip():
        try:
            kickoff = _kickoff(row["Time"].strip())
        except ValueError:
            raise ValueError(f"time {row['Time']!r} is not HH:MM") from None
    hg, ag = _goals(row.get("FTHG")), _goals(row.get("FTAG"))
    result = (row.get("FTR") or "").strip() or None
    if result is not None and result not in SELECTIONS:
        raise ValueError(f"result {result!r} is not H, D or A")
    if (hg is None) != (ag is None) or (hg is None) != (result is None):
        raise ValueError("goals and result are partly missing")
    if hg is not None and ag is not None and result != ("H" if hg > ag else "A" if ag > hg else "D"):
        raise ValueError(f"result {result} contradicts the score {hg}-{ag}")
    return Match(
        league=league, season=season or season_of(day), date=day, kickoff=kickoff,
        home_team=home, away_team=away, home_goals=hg, away_goals=ag, result=result,
        prices=read_prices(row),
        source_file=source_file, line=line,
    )


def parse_lines(lines: Iterable[str], source_file: str, season: str | None = None) -> ParseResult:
    """Parse CSV text lines (header first). ``season`` overrides the inference from dates."""
    reader = csv.DictReader(lines)
    header = [h for h in (reader.fieldnames or [])]
    read_prices = _price_reader(price_columns(header))
    out = ParseResult(matches=[], problems=[])
    for row in reader:
        line = reader.line_num
        if not any(v.strip() for k, v in row.items() if k is not None and isinstance(v, str)):
            out.blank_rows += 1
            continue
        try:
            out.matches.append(_row_match(row, read_prices, season, source_file, line))
        except (ValueError, TypeError) as exc:
            out.problems.append(Problem(source_file, line, str(exc)))
    if season is None and out.matches:
        # One file is one season: name it after the file's first match, so that a season that
        # ran into July (2019-20, COVID) is not split in two.
        first = season_of(min(m.date for m in out.matches))
        out.matches = [_with_season(m, first) for m in out.matches]
    return out


def _with_season(m: Match, season: str) -> Match:
    if m.season == season:
        return m
    return Match(m.league, season, m.date, m.kickoff, m.home_team, m.away_team, m.home_goals,
                 m.away_goals, m.result, m.prices, m.source_file, m.line)


def parse_file(path: str | Path) -> ParseResult:
    """Parse one football-data.co.uk CSV file; the season comes from a ``YYYY-YY`` in the
    file name when there is one, else from the file's first match date."""
    path = Path(path)
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
        return parse_lines(fh, source_file=path.name, season=_season_from_name(path))


def league_of_file(path: Path) -> str | None:
    m = _LEAGUE_IN_NAME.match(path.name)
    return m["league"] if m else None


def csv_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every ``*.csv`` in ``paths`` (files as given, folders searched recursively), sorted."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            yield from sorted(p.rglob("*.csv"))
        elif p.exists():
            yield p
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
