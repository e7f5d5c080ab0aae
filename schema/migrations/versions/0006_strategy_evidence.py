"""strategy evidence: each strategy's selection, validation and live evidence, one row per window.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "strategy_evidence",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("strategy_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("backtest_id", sa.String(length=128), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("total_bets", sa.Integer(), nullable=False),
        sa.Column("roi", sa.Float(), nullable=False),
        sa.Column("yield_lcb", sa.Float(), nullable=False),
        sa.Column("deflated_sharpe", sa.Float(), nullable=False),
        sa.Column("trials", sa.Integer(), nullable=False),
        sa.Column("backtest_score", sa.Float(), nullable=False),
        sa.Column("ml_confidence", sa.Float(), nullable=True),
        sa.Column("composite_score", sa.Float(), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategy_evidence")),
        sa.UniqueConstraint("strategy_id", "kind", "window_start", "window_end", name="uq_strategy_evidence_window"),
    )
    op.create_index(op.f("ix_strategy_evidence_strategy_id"), "strategy_evidence", ["strategy_id"])
    op.create_index(op.f("ix_strategy_evidence_judged_at"), "strategy_evidence", ["judged_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_strategy_evidence_judged_at"), table_name="strategy_evidence")
    op.drop_index(op.f("ix_strategy_evidence_strategy_id"), table_name="strategy_evidence")
    op.drop_table("strategy_evidence")
