"""Real market data: football-data.co.uk CSVs parsed (``csv``), stored (``store``) and loaded as
numpy windows (``arrays``). Event ids come from ``edgeloop.marketdata.csv.event_id``."""

from edgeloop.marketdata.arrays import MarketArrays, PreEventArrays, load_window
from edgeloop.marketdata.csv import SELECTIONS, Match, event_id, parse_file

__all__ = ["MarketArrays", "PreEventArrays", "load_window", "SELECTIONS", "Match", "event_id", "parse_file"]
