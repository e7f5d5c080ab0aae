"""lifecycle: Rankings, live predictions and discovery reports (lifecycle issue).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "strategy_rankings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ranking_id", sa.String(length=64), nullable=False),
        sa.Column("ranked_at", TS, nullable=False),
        sa.Column("strategy_id", sa.String(length=128), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("composite_score", sa.Float(), nullable=False),
        sa.Column("ml_confidence", sa.Float(), nullable=False),
        sa.Column("backtest_score", sa.Float(), nullable=False),
        sa.Column("total_bets", sa.Integer(), nullable=False),
        sa.Column("backtest_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategy_rankings")),
        sa.UniqueConstraint("ranking_id", "strategy_id", name="uq_strategy_rankings_ranking_strategy"),
    )
    op.create_index(op.f("ix_strategy_rankings_ranking_id"), "strategy_rankings", ["ranking_id"])
    op.create_index(op.f("ix_strategy_rankings_ranked_at"), "strategy_rankings", ["ranked_at"])
    op.create_index(op.f("ix_strategy_rankings_strategy_id"), "strategy_rankings", ["strategy_id"])

    op.create_table(
        "training_triggers",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("triggered_at", TS, nullable=False),
        sa.Column("feedback_samples", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_training_triggers")),
    )
    op.create_index(op.f("ix_training_triggers_triggered_at"), "training_triggers", ["triggered_at"])

    op.create_table(
        "discovery_reports",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("failed_step", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("steps", JSON, nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.Column("top_strategies", JSON, nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_discovery_reports")),
    )
    op.create_index(op.f("ix_discovery_reports_status"), "discovery_reports", ["status"])
    op.create_index(op.f("ix_discovery_reports_started_at"), "discovery_reports", ["started_at"])

    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("selection", sa.String(length=8), nullable=False),
        sa.Column("strategy_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("edge", sa.Float(), nullable=True),
        sa.Column("recommendation", sa.String(length=8), nullable=False),
        sa.Column("event_date", TS, nullable=True),
        sa.Column("predicted_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint("event_id", "selection", "strategy_id", "model_version", name="uq_predictions_key"),
    )
    op.create_index(op.f("ix_predictions_event_id"), "predictions", ["event_id"])
    op.create_index("ix_predictions_strategy_version", "predictions", ["strategy_id", "model_version"])


def downgrade() -> None:
    op.drop_table("predictions")
    op.drop_table("discovery_reports")
    op.drop_table("training_triggers")
    op.drop_table("strategy_rankings")
