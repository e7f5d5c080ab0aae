"""market data: Events, selections, prices and results imported from football-data.co.uk (backtester issue).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "market_events",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("league", sa.String(length=8), nullable=False),
        sa.Column("season", sa.String(length=9), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.Column("kickoff_time", sa.Time(), nullable=True),
        sa.Column("home_team", sa.String(length=64), nullable=False),
        sa.Column("away_team", sa.String(length=64), nullable=False),
        sa.Column("source_file", sa.String(length=128), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_market_events")),
        sa.UniqueConstraint("league", "event_date", "home_team", "away_team", name="uq_market_events_natural"),
    )
    op.create_index("ix_market_events_league_date", "market_events", ["league", "event_date"])
    op.create_table(
        "market_results",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("home_goals", sa.SmallInteger(), nullable=False),
        sa.Column("away_goals", sa.SmallInteger(), nullable=False),
        sa.Column("result", sa.String(length=1), nullable=False),
        sa.CheckConstraint("result IN ('H', 'D', 'A')", name=op.f("ck_market_results_result_hda")),
        sa.ForeignKeyConstraint(["event_id"], ["market_events.event_id"], ondelete="CASCADE",
                                name=op.f("fk_market_results_event_id_market_events")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_market_results")),
    )
    op.create_table(
        "market_prices",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("home", sa.Float(), nullable=True),
        sa.Column("draw", sa.Float(), nullable=True),
        sa.Column("away", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["market_events.event_id"], ondelete="CASCADE",
                                name=op.f("fk_market_prices_event_id_market_events")),
        sa.PrimaryKeyConstraint("event_id", "source", name=op.f("pk_market_prices")),
    )


def downgrade() -> None:
    op.drop_table("market_prices")
    op.drop_table("market_results")
    op.drop_index("ix_market_events_league_date", table_name="market_events")
    op.drop_table("market_events")
