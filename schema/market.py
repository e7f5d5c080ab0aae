"""Market data: events (matches), their results and their prices, from football-data.co.uk.

Layout, and why:

* ``market_events``: one row per match, keyed by the stable string id of
  ``edgeloop.marketdata.csv.event_id`` (``E0-2019-08-09-Liverpool-Norwich``), the id the ML service's
  GetPrediction and the prediction cache use too. The natural key (league, date, home, away)
  is unique as well, so importing the same file twice inserts nothing.
* ``market_results``: the full-time score and winning selection, in its own table because it
  is *post-event* information: the backtester reads it only to settle, and a match that has
  not been played has no row here rather than NULL columns that a careless query could use.
* ``market_prices``: **long by source, wide by selection**: one row per (event, source) with
  ``home``/``draw``/``away`` decimal odds. Long by source because the set of bookmakers changes
  every few seasons (30-odd codes so far: B365, PS, BFE, 1XB …) and a new book must not need a
  migration; wide by selection because the three prices of a source are one quote, the unit
  whose overround is removed when de-margining, and are always read together: one row instead
  of three keeps the table ~3× smaller and loading a window one pass. The selections of a
  1X2 market are fixed (home, draw, away: ``edgeloop.marketdata.csv.SELECTIONS``), so they are columns
  rather than rows of a selections table.

Source codes are canonical (``edgeloop.marketdata.csv.canonical_source``): bookmaker codes as in the
CSV (``PS`` = Pinnacle), ``AVG``/``MAX`` for the market average/maximum, a trailing ``C`` for
closing prices (``PSC``, ``AVGC``, ``B365C``).
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import CheckConstraint, Date, DateTime, Float, ForeignKey, Index, SmallInteger, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from edgeloop.schema.base import Base, utcnow


class MarketEvent(Base):
    __tablename__ = "market_events"
    __table_args__ = (
        UniqueConstraint("league", "event_date", "home_team", "away_team", name="uq_market_events_natural"),
        Index("ix_market_events_league_date", "league", "event_date"),
    )

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    league: Mapped[str] = mapped_column(String(8))
    season: Mapped[str] = mapped_column(String(9))  # "2019-20"
    event_date: Mapped[date] = mapped_column(Date)
    kickoff_time: Mapped[time | None] = mapped_column(Time)  # local (UK) time as published
    home_team: Mapped[str] = mapped_column(String(64))
    away_team: Mapped[str] = mapped_column(String(64))
    source_file: Mapped[str] = mapped_column(String(128))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MarketResult(Base):
    __tablename__ = "market_results"
    __table_args__ = (CheckConstraint("result IN ('H', 'D', 'A')", name="result_hda"),)

    event_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("market_events.event_id", ondelete="CASCADE"), primary_key=True)
    home_goals: Mapped[int] = mapped_column(SmallInteger)
    away_goals: Mapped[int] = mapped_column(SmallInteger)
    result: Mapped[str] = mapped_column(String(1))


class MarketPrice(Base):
    __tablename__ = "market_prices"

    event_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("market_events.event_id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    home: Mapped[float | None] = mapped_column(Float)
    draw: Mapped[float | None] = mapped_column(Float)
    away: Mapped[float | None] = mapped_column(Float)
