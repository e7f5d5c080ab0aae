"""Strategy parameters: one validated, immutable object, read from a mapping or a JSON/YAML file.

Every problem is reported at once, one clear sentence each, in an ``InvalidStrategy``; an
unknown parameter is a problem too (a typo such as ``min_egde`` must not silently run the
default).

Parameters:

``side``                 ``back`` (default) or ``lay``.
``selections``           subset of ``home``, ``draw``, ``away`` (default all three).
``price_source``         the price bets are struck at: a bookmaker code (``B365``, ``PS`` …),
                         ``pinnacle_or_bet365`` (``PSB365``, the default: Pinnacle's quote
                         where there is one, else Bet365's), ``betfair_exchange`` (``BFE``),
                         ``max``/``market_maximum``, ``avg``/``market_average``, ``pinnacle``,
                         ``pinnacle_closing`` (``marketdata.sources``). A lay needs an
                         exchange source (``BFE``/``BFEC``): a bookmaker's price is a back price.
``probability_source``   ``market`` (de-margined prices of ``market_probability_source``, the
                         baseline) or ``model`` (point-in-time predictions supplied to the run).
``market_probability_source``  prices de-margined for the baseline; default ``AVG``.
``min_edge``             bet when the edge exceeds it; edge per unit risked: back ``p·o − 1``,
                         lay ``(1 − p·o)/(o − 1)``.
``min_confidence``       the forecast's certainty about the match must be at least this:
                         1 − H/ln 3, H the entropy of the home/draw/away probabilities the
                         strategy uses (model or de-margined market). One number per match,
                         the same for every selection and for backs and lays, and the
                         confidence the ML service reports with its predictions.
``min_odds``/``max_odds`` decimal odds bounds, inclusive.
``staking``              ``flat`` (``flat_stake`` units per bet; for a lay it is the backer's
                         stake) or ``kelly`` (``kelly_fraction`` × full Kelly of the current
                         bankroll, capped at ``max_stake_fraction`` of it; for a lay the fraction
                         is of the liability). Either way the bankroll is real: no bet risks
                         more than is left, and betting stops at ruin (``settlement``).
``one_bet_per_event``    only the selection with the largest edge (default: every qualifying one).
``commission``           on net winnings per market; default: the ``exchange_commission``
                         setting (5%) for an exchange source, 0 for a bookmaker.
``initial_bankroll``     units; the money the strategy bets with (drawdown, Sharpe and Kelly
                         stakes are relative to it, and flat stakes stop when it is gone).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from edgeloop.core.errors import InvalidStrategy
from edgeloop.marketdata.sources import DEFAULT_BOOK, EXCHANGE_SOURCES

SELECTION_NAMES = ("home", "draw", "away")
SIDES = ("back", "lay")
STAKINGS = ("flat", "kelly")
PROBABILITY_SOURCES = ("market", "model")

SOURCE_ALIASES = {
    "max": "MAX", "maximum": "MAX", "market_maximum": "MAX", "market_max": "MAX",
    "avg": "AVG", "average": "AVG", "market_average": "AVG", "market_avg": "AVG",
    "pinnacle": "PS", "pinnacle_closing": "PSC", "betfair_exchange": "BFE", "betfair_exchange_closing": "BFEC",
    "max_closing": "MAXC", "avg_closing": "AVGC", "bet365": "B365",
    "pinnacle_or_bet365": "PSB365", "pinnacle_or_bet365_closing": "PSB365C",
}
# Codes that end in C without being closing prices (VC = VC Bet; its closing price is VCC).
_OPENING_ENDING_IN_C = frozenset({"VC"})


def canonical_source(name: str) -> str:
    return SOURCE_ALIASES.get(name.strip().lower(), name.strip().upper())


def is_closing(source: str) -> bool:
    """Closing prices are quoted at kick-off, after every opening price of the same match."""
    return source.endswith("C") and source not in _OPENING_ENDING_IN_C


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str = "unnamed"
    side: str = "back"
    selections: tuple[str, ...] = SELECTION_NAMES
    price_source: str = DEFAULT_BOOK
    probability_source: str = "market"
    market_probability_source: str = "AVG"
    min_edge: float = 0.0
    min_confidence: float = 0.0
    min_odds: float = 1.01
    max_odds: float = 1000.0
    staking: str = "flat"
    flat_stake: float = 1.0
    kelly_fraction: float = 0.25
    max_stake_fraction: float = 0.05
    one_bet_per_event: bool = False
    commission: float | None = None
    initial_bankroll: float = 100.0
    strategy_id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.selections, list):
            object.__setattr__(self, "selections", tuple(self.selections))
        for key in ("price_source", "market_probability_source"):  # "max" and "MAX" are one source
            if isinstance(getattr(self, key), str):
                object.__setattr__(self, key, canonical_source(getattr(self, key)))
        problems = _problems(self)
        if problems:
            raise InvalidStrategy(f"invalid strategy {self.name!r}: " + "; ".join(problems))
        if not self.strategy_id:
            object.__setattr__(self, "strategy_id", "s-" + hashlib.sha1(
                json.dumps(self.params(), sort_keys=True).encode()).hexdigest()[:16])

    @property
    def selection_indices(self) -> tuple[int, ...]:
        return tuple(SELECTION_NAMES.index(s) for s in self.selections)

    @property
    def method(self) -> str:
        """How the probabilities were made, for the event's free-text ``method``: the fixed
        parameters run over the whole window, nothing chosen on it."""
        return "market_baseline" if self.probability_source == "market" else "model_point_in_time"

    def params(self) -> dict[str, Any]:
        """The parameters as plain JSON values (what the event's ``params`` carries)."""
        d = asdict(self)
        d.pop("strategy_id")
        d.pop("name")
        d["selections"] = list(self.selections)
        return d

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Strategy":
        """From plain values (a file, a task argument, an event's params). Parameters may also
        sit under a ``params`` key beside ``name``/``strategy_id``; names are case-insensitive
        where they are codes, source aliases are resolved."""
        if not isinstance(data, Mapping):
            raise InvalidStrategy(f"a strategy is a mapping of parameters, got {type(data).__name__}")
        kw = {k: v for k, v in data.items() if k != "params"}
        if isinstance(data.get("params"), Mapping):
            kw = {**data["params"], **kw}
        # A published event's params also name the window's leagues and model versions:
        # they describe the run, not the strategy.
        kw.pop("leagues", None)
        kw.pop("model_versions", None)
        unknown = sorted(set(kw) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidStrategy(f"unknown strategy parameter(s): {', '.join(map(str, unknown))}; "
                                  f"known: {', '.join(sorted(cls.__dataclass_fields__))}")
        sel = kw.get("selections")
        if isinstance(sel, str):
            sel = [sel]
        if isinstance(sel, (list, tuple)):
            kw["selections"] = tuple(x.strip().lower() if isinstance(x, str) else x for x in sel)
        for key in ("side", "staking", "probability_source"):
            if isinstance(kw.get(key), str):
                kw[key] = kw[key].strip().lower()
        return cls(**kw)


def load_strategy(path: str | Path) -> Strategy:
    """A strategy from a ``.json`` or ``.yaml``/``.yml`` file."""
    path = Path(path)
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError's subclasses
        raise InvalidStrategy(f"{path}: not valid JSON/YAML: {exc}") from None
    except Exception as exc:  # yaml.YAMLError does not derive from ValueError
        raise InvalidStrategy(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(data, Mapping) and "name" not in data:
        data = {"name": path.stem, **data}
    return Strategy.from_mapping(data)


def _number(problems: list[str], name: str, value: Any, lo: float, hi: float, *,
            lo_open: bool = False, hi_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{name} must be a finite number, got {value!r}")
        return
    if (value <= lo if lo_open else value < lo) or (value >= hi if hi_open else value > hi):
        lb, hb = "(" if lo_open else "[", ")" if hi_open else "]"
        problems.append(f"{name} must be in {lb}{lo}, {hi}{hb}, got {value}")


def _choice(problems: list[str], name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        problems.append(f"{name} must be one of {', '.join(options)}, got {value!r}")


def _problems(s: Strategy) -> list[str]:
    p: list[str] = []
    if not isinstance(s.name, str) or not s.name.strip() or len(s.name) > 256:
        p.append("name must be a non-empty string of at most 256 characters")
    _choice(p, "side", s.side, SIDES)
    _choice(p, "staking", s.staking, STAKINGS)
    _choice(p, "probability_source", s.probability_source, PROBABILITY_SOURCES)
    sel = s.selections
    if (not isinstance(sel, (tuple, list)) or not sel or not all(isinstance(x, str) and x in SELECTION_NAMES for x in sel)
            or len(set(sel)) != len(sel)):
        p.append(f"selections must be distinct values among home, draw, away, got {sel!r}")
    if not isinstance(s.strategy_id, str) or len(s.strategy_id) > 128:
        p.append(f"strategy_id must be a string of at most 128 characters, got {s.strategy_id!r}")
    for key in ("price_source", "market_probability_source"):
        v = getattr(s, key)
        if not isinstance(v, str) or not v or not v.isalnum() or len(v) > 16:
            p.append(f"{key} must be a price source code such as MAX, AVG, PS, B365, got {v!r}")
    _number(p, "min_edge", s.min_edge, -1.0, 10.0)
    _number(p, "min_confidence", s.min_confidence, 0.0, 1.0)
    _number(p, "min_odds", s.min_odds, 1.0, 1000.0, lo_open=True)
    _number(p, "max_odds", s.max_odds, 1.0, 10000.0, lo_open=True)
    odds_ok = not any(x.startswith(("min_odds", "max_odds")) for x in p)
    if odds_ok and s.min_odds > s.max_odds:
        p.append(f"min_odds {s.min_odds} is above max_odds {s.max_odds}")
    _number(p, "flat_stake", s.flat_stake, 0.0, 1e6, lo_open=True)
    _number(p, "kelly_fraction", s.kelly_fraction, 0.0, 1.0, lo_open=True)
    _number(p, "max_stake_fraction", s.max_stake_fraction, 0.0, 1.0, lo_open=True)
    _number(p, "initial_bankroll", s.initial_bankroll, 0.0, 1e9, lo_open=True)
    if s.commission is not None:
        _number(p, "commission", s.commission, 0.0, 0.5)
    if not isinstance(s.one_bet_per_event, bool):
        p.append(f"one_bet_per_event must be true or false, got {s.one_bet_per_event!r}")
    if s.side == "lay" and isinstance(s.price_source, str) and s.price_source not in EXCHANGE_SOURCES:
        p.append(f"a lay needs an exchange price (price_source BFE or BFEC): {s.price_source} is a back price "
                 "(a bookmaker's or the market's), and nobody offers a lay at it")
    if (s.probability_source == "market" and isinstance(s.market_probability_source, str)
            and isinstance(s.price_source, str) and is_closing(s.market_probability_source)
            and not is_closing(s.price_source)):
        p.append(f"look-ahead: probabilities from closing prices ({s.market_probability_source}) are not known "
                 f"when the opening price {s.price_source} is taken; bet at a closing price or use opening probabilities")
    return p
