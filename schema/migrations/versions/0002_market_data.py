"""market data: Events, selections, prices and results imported from football-data.co.uk (backtester issue).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Reserved slot in the chain; filled by the issue named above.


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
