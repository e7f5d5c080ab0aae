"""The store: SQLAlchemy 2 models, Alembic migrations and the queries the system runs.

Every model module registers on the one ``Base``; import them all here so Alembic and
``Base.metadata`` see every table.
"""

from edgeloop.schema.base import Base
from edgeloop.schema import pipeline  # noqa: F401  (registers tables)
from edgeloop.schema import market  # noqa: F401  (market data: events, prices, results)
from edgeloop.schema import mlstore  # noqa: F401  (the ML service's tables)
from edgeloop.schema import lifecycle  # noqa: F401  (rankings, training triggers, discovery reports, predictions)

__all__ = ["Base"]
