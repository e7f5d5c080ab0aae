"""A window of matches as numpy arrays: what the backtester and the ML outcome model consume.

``load_window(leagues, start, end)`` returns ``MarketArrays`` sorted by kick-off: event ids,
dates, teams, the result index (0 home, 1 draw, 2 away, -1 not played) and, per price
source, an ``(n, 3)`` float array of decimal odds with NaN where that source has no price
(the derived sources of ``marketdata.sources``, e.g. ``PSB365``, included).
It reads the CSV files of ``settings.data_dir`` (the default, needs nothing running) or the
market tables of a database (``database_url=…``), and caches per process: the first load of
ten E0 seasons parses ~3,800 rows, every later call with the same arguments is a dict lookup.
A CSV window reads only the files named for a season it can overlap; ``parse_csv_files``
parses ahead, for a process that would rather pay at start (``edgeloop web``).
Arrays are read-only because the cache shares them between callers.

Results are post-event information. They travel in the same object for convenience, but
``MarketArrays.pre_event()`` gives the view without them, and that is all the backtester's
decision step is allowed to see (``backtester/engine.py``).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, fields
from datetime import date, time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from sqlalchemy import ColumnElement, select

from edgeloop.core.settings import get_settings
from edgeloop.marketdata.csv import SELECTIONS, Match, csv_files, dates_of_file, league_of_file, parse_file
from edgeloop.marketdata.sources import with_fallback_sources
from edgeloop.schema.db import make_engine
from edgeloop.schema.market import MarketEvent as E
from edgeloop.schema.market import MarketPrice as P
from edgeloop.schema.market import MarketResult as R

RESULT_INDEX: dict[str | None, int] = {s: i for i, s in enumerate(SELECTIONS)}
NO_RESULT = -1


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, slots=True)
class PreEventArrays:
    """Everything known before kick-off: identities, times and prices. No results."""

    event_ids: np.ndarray  # (n,) str objects, marketdata.csv.event_id
    leagues: np.ndarray  # (n,) str objects
    seasons: np.ndarray  # (n,) str objects, "2019-20"
    dates: np.ndarray  # (n,) datetime64[D]
    kickoffs: np.ndarray  # (n,) datetime64[m]; midnight of the date when the time is unknown
    home_teams: np.ndarray
    away_teams: np.ndarray
    prices: dict[str, np.ndarray]  # source -> (n, 3) float64 decimal odds, NaN = no price

    def __len__(self) -> int:
        return len(self.event_ids)

    @property
    def sources(self) -> list[str]:
        return sorted(self.prices)

    def price(self, source: str) -> np.ndarray:
        """``(n, 3)`` odds of ``source``; all NaN when the window has none of it."""
        got = self.prices.get(source)
        if got is None:
            return _readonly(np.full((len(self), 3), np.nan))
        return got


@dataclass(frozen=True, slots=True)
class MarketArrays(PreEventArrays):
    """A window of matches, pre-event arrays plus the results (post-event)."""

    results: np.ndarray = None  # type: ignore[assignment]  # (n,) int8: 0 H, 1 D, 2 A, -1 none
    home_goals: np.ndarray = None  # type: ignore[assignment]  # (n,) int16, -1 when not played
    away_goals: np.ndarray = None  # type: ignore[assignment]

    def pre_event(self) -> PreEventArrays:
        return PreEventArrays(**{f.name: getattr(self, f.name) for f in fields(PreEventArrays)})

    def select(self, mask: np.ndarray) -> "MarketArrays":
        """The events where ``mask`` (boolean or index array) holds, as a new read-only window."""
        kw: dict[str, Any] = {}
        for f in fields(MarketArrays):
            v = getattr(self, f.name)
            kw[f.name] = ({k: _readonly(p[mask]) for k, p in v.items()} if f.name == "prices"
                          else _readonly(v[mask]))
        return MarketArrays(**kw)


_NO_PRICE = (None, None, None)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def arrays_from_matches(matches: Sequence[Match]) -> MarketArrays:
    """Build a window from parsed matches, sorted by kick-off then event id."""
    return _arrays(matches, [m.event_id for m in matches])


def _arrays(matches: Sequence[Match], ids: Sequence[str]) -> MarketArrays:
    """``arrays_from_matches`` given each match's event id. A strategy page builds one window
    per season it shows, so this is kept to a few ms a season: each id built once, and the
    dates as day numbers (numpy converts date objects slowly)."""
    keyed = sorted((m.date, m.kickoff or time(0), ids[i], i) for i, m in enumerate(matches))
    ms = [matches[k[3]] for k in keyed]
    n = len(ms)
    sources = sorted({s for m in ms for s in m.prices})
    # One conversion per source (None → NaN), not one assignment per match and source.
    prices = {s: np.array([m.prices.get(s, _NO_PRICE) for m in ms], dtype=float).reshape(n, 3) for s in sources}
    days = np.array([k[0].toordinal() - _EPOCH_ORDINAL for k in keyed], dtype=np.int64)
    minutes = np.array([k[1].hour * 60 + k[1].minute for k in keyed], dtype=np.int64)
    obj = lambda xs: _readonly(np.array(list(xs), dtype=object))  # noqa: E731
    return MarketArrays(
        event_ids=obj(k[2] for k in keyed),
        leagues=obj(m.league for m in ms),
        seasons=obj(m.season for m in ms),
        dates=_readonly(days.astype("datetime64[D]")),
        kickoffs=_readonly((days * 1440 + minutes).astype("datetime64[m]")),
        home_teams=obj(m.home_team for m in ms),
        away_teams=obj(m.away_team for m in ms),
        prices={s: _readonly(p) for s, p in with_fallback_sources(prices).items() if not np.isnan(p).all()},
        results=_readonly(np.array([RESULT_INDEX.get(m.result, NO_RESULT) for m in ms], dtype=np.int8)),
        home_goals=_readonly(np.array([-1 if m.home_goals is None else m.home_goals for m in ms], dtype=np.int16)),
        away_goals=_readonly(np.array([-1 if m.away_goals is None else m.away_goals for m in ms], dtype=np.int16)),
    )


# --- CSV -------------------------------------------------------------------------------

_lock = threading.Lock()
_parsed: dict[tuple[str, int, int], list[Match]] = {}


def _parsed_file(path: Path) -> list[Match]:
    """Parsed matches of one file, cached by (path, mtime, size) so an edited file is re-read."""
    key = _file_key(path)
    with _lock:
        hit = _parsed.get(key)
    if hit is None:
        hit = parse_file(path).matches  # broken rows are reported by `edgeloop data import`
        with _lock:
            _parsed[key] = hit
    return hit


def _window_files(data_dir: Path, leagues: tuple[str, ...] | None, start: date | None,
                  end: date | None) -> tuple[Path, ...]:
    """The files that can hold matches of the window: a file named for a league or a season
    outside it is not read (a cold process parses only the seasons it asks for)."""
    files = []
    for path in csv_files([data_dir]):
        league, dates = league_of_file(path), dates_of_file(path)
        if leagues is not None and league is not None and league not in leagues:
            continue
        if dates is not None and ((end is not None and end < dates[0]) or (start is not None and start > dates[1])):
            continue
        files.append(path)
    return tuple(files)


def _in_window(m: Match, leagues: tuple[str, ...] | None, start: date | None, end: date | None) -> bool:
    return ((leagues is None or m.league in leagues) and (start is None or m.date >= start)
            and (end is None or m.date <= end))


@functools.lru_cache(maxsize=16)  # a full window of the shipped data is ~10 MB
def _csv_window(files_key: tuple[tuple[str, int, int], ...], leagues, start, end) -> MarketArrays:
    matches = [m for path, _, _ in files_key for m in _parsed_file(Path(path)) if _in_window(m, leagues, start, end)]
    unique = _dedupe(matches)
    return _arrays(list(unique.values()), list(unique))


def _dedupe(matches: Iterable[Match]) -> dict[str, Match]:
    """Event id → the first match with it (a match in two files is read once)."""
    seen: dict[str, Match] = {}
    for m in matches:
        seen.setdefault(m.event_id, m)
    return seen


def resolve_data_dir(data_dir: str | Path) -> Path:
    """A relative data dir is looked up from the working directory, then next to this
    package: ``data/`` is its sibling both in a checkout (the folders at the repository's root)
    and installed (``edgeloop/data/`` beside ``edgeloop/marketdata/``), so the shipped seasons
    are found from any directory."""
    data_dir = Path(data_dir)
    if data_dir.is_absolute() or data_dir.exists():
        return data_dir
    shipped = Path(__file__).resolve().parents[1] / data_dir
    return shipped if shipped.exists() else data_dir


def load_csv_window(leagues: Iterable[str] | None = None, start: date | None = None, end: date | None = None,
                    data_dir: str | Path | None = None) -> MarketArrays:
    """Matches of ``leagues`` (all when None) with ``start <= date <= end`` from the CSV files."""
    if data_dir is None:
        data_dir = get_settings().data_dir
    lg = tuple(sorted(set(leagues))) if leagues is not None else None
    files = _window_files(resolve_data_dir(data_dir), lg, start, end)
    return _csv_window(tuple(_file_key(p) for p in files), lg, start, end)


def _file_key(path: Path) -> tuple[str, int, int]:
    """(path, mtime, size): a file edited since is read again."""
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def parse_csv_files(leagues: Iterable[str] | None = None, data_dir: str | Path | None = None) -> int:
    """Parse the CSV files of ``leagues`` (all when None) into this process's cache, what the
    first load of each season would do; returns the number of matches. A long-running reader
    (``edgeloop web``) calls it once at start, so a page's first backtest finds its seasons parsed."""
    if data_dir is None:
        data_dir = get_settings().data_dir
    lg = tuple(sorted(set(leagues))) if leagues is not None else None
    return sum(len(_parsed_file(path)) for path in _window_files(resolve_data_dir(data_dir), lg, None, None))


# --- database --------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)  # a full window of the shipped data is ~10 MB
def _db_window(url: str, leagues: tuple[str, ...] | None, start: date | None, end: date | None) -> MarketArrays:
    engine = make_engine(url)
    try:
        cond: list[ColumnElement[bool]] = []
        if leagues is not None:
            cond.append(E.league.in_(leagues))
        if start is not None:
            cond.append(E.event_date >= start)
        if end is not None:
            cond.append(E.event_date <= end)
        with engine.connect() as conn:
            events = conn.execute(
                select(E.event_id, E.league, E.season, E.event_date, E.kickoff_time, E.home_team, E.away_team,
                       R.home_goals, R.away_goals, R.result).outerjoin(R, R.event_id == E.event_id).where(*cond)
            ).all()
            price_rows = conn.execute(
                select(P.event_id, P.source, P.home, P.draw, P.away).join(E, E.event_id == P.event_id).where(*cond)
            ).all()
    finally:
        engine.dispose()
    by_event: dict[str, dict[str, tuple]] = {}
    for eid, source, h, d, a in price_rows:
        by_event.setdefault(eid, {})[source] = (h, d, a)
    matches = [Match(league=lg, season=season, date=day, kickoff=ko, home_team=home, away_team=away,
                     home_goals=hg, away_goals=ag, result=res, prices=by_event.get(eid, {}))
               for eid, lg, season, day, ko, home, away, hg, ag, res in events]
    return arrays_from_matches(matches)


def load_db_window(database_url: str, leagues: Iterable[str] | None = None, start: date | None = None,
                   end: date | None = None) -> MarketArrays:
    """The same window from the market tables (after `edgeloop data import`). Cached per process:
    call ``clear_cache()`` after importing more data into a database this process already read."""
    lg = tuple(sorted(set(leagues))) if leagues is not None else None
    return _db_window(database_url, lg, start, end)


def load_window(leagues: Iterable[str] | None = None, start: date | None = None, end: date | None = None, *,
                database_url: str | None = None, data_dir: str | Path | None = None) -> MarketArrays:
    """From the database when ``database_url`` is given, else from the CSV files."""
    if database_url is not None:
        return load_db_window(database_url, leagues, start, end)
    return load_csv_window(leagues, start, end, data_dir)


def clear_cache() -> None:
    _csv_window.cache_clear()
    _db_window.cache_clear()
    with _lock:
        _parsed.clear()
