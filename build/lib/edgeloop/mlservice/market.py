"""Where the ML service reads matches from: the market tables or the shipped CSV files."""

from __future__ import annotations

from sqlalchemy import select

from edgeloop.core.settings import Settings
from edgeloop.marketdata import MarketArrays, load_window
from edgeloop.marketdata.arrays import clear_cache
from edgeloop.mlservice.context import ServiceContext
from edgeloop.schema.market import MarketEvent


def _database_has_matches(ctx: ServiceContext) -> bool:
    with ctx.sessions() as s:
        return s.scalars(select(MarketEvent.event_id).limit(1)).first() is not None


def load_market(ctx: ServiceContext, *, fresh: bool = False) -> MarketArrays:
    """Every match of the configured source (``ml_market_source``), sorted by kick-off.

    ``fresh`` drops marketdata's per-process cache first, so a training job sees matches
    imported since the service started."""
    settings: Settings = ctx.settings
    if fresh:
        clear_cache()
    source = settings.ml_market_source
    if source == "database" or (source == "auto" and _database_has_matches(ctx)):
        return load_window(database_url=settings.database_url)
    return load_window(data_dir=settings.data_dir)
