"""pipeline tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feedback_batches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('batch_key', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_batches')),
    sa.UniqueConstraint('batch_key', name=op.f('uq_feedback_batches_batch_key'))
    )
    op.create_table('strategies',
    sa.Column('strategy_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('ml_confidence', sa.Float(), nullable=True),
    sa.Column('backtest_score', sa.Float(), nullable=True),
    sa.Column('composite_score', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('strategy_id', name=op.f('pk_strategies'))
    )
    with op.batch_alter_table('strategies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_strategies_composite_score'), ['composite_score'], unique=False)
        batch_op.create_index(batch_op.f('ix_strategies_status'), ['status'], unique=False)

    op.create_table('backtest_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('backtest_id', sa.String(length=128), nullable=False),
    sa.Column('strategy_id', sa.String(length=128), nullable=False),
    sa.Column('strategy_name', sa.String(length=256), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('window_start', sa.Date(), nullable=False),
    sa.Column('window_end', sa.Date(), nullable=False),
    sa.Column('method', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('total_bets', sa.Integer(), nullable=False),
    sa.Column('roi', sa.Float(), nullable=False),
    sa.Column('profit', sa.Float(), nullable=False),
    sa.Column('win_rate', sa.Float(), nullable=False),
    sa.Column('profit_factor', sa.Float(), nullable=False),
    sa.Column('sharpe_ratio', sa.Float(), nullable=False),
    sa.Column('max_drawdown', sa.Float(), nullable=False),
    sa.Column('extra_metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('backtest_score', sa.Float(), nullable=False),
    sa.Column('ml_confidence', sa.Float(), nullable=True),
    sa.Column('composite_score', sa.Float(), nullable=True),
    sa.Column('ml_feedback_submitted', sa.Boolean(), nullable=False),
    sa.Column('feedback_batch_id', sa.Integer(), nullable=True),
    sa.Column('event_pb', sa.LargeBinary(), nullable=False),
    sa.Column('stream_entry_id', sa.String(length=64), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['feedback_batch_id'], ['feedback_batches.id'], name=op.f('fk_backtest_results_feedback_batch_id_feedback_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backtest_results')),
    sa.UniqueConstraint('backtest_id', name=op.f('uq_backtest_results_backtest_id'))
    )
    with op.batch_alter_table('backtest_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backtest_results_composite_score'), ['composite_score'], unique=False)
        batch_op.create_index(batch_op.f('ix_backtest_results_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index('ix_backtest_results_unsubmitted', ['id'], unique=False, postgresql_where=sa.text('ml_feedback_submitted = false'), sqlite_where=sa.text('ml_feedback_submitted = 0'))



def downgrade() -> None:
    with op.batch_alter_table('backtest_results', schema=None) as batch_op:
        batch_op.drop_index('ix_backtest_results_unsubmitted', postgresql_where=sa.text('ml_feedback_submitted = false'), sqlite_where=sa.text('ml_feedback_submitted = 0'))
        batch_op.drop_index(batch_op.f('ix_backtest_results_strategy_id'))
        batch_op.drop_index(batch_op.f('ix_backtest_results_composite_score'))

    op.drop_table('backtest_results')
    with op.batch_alter_table('strategies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_strategies_status'))
        batch_op.drop_index(batch_op.f('ix_strategies_composite_score'))

    op.drop_table('strategies')
    op.drop_table('feedback_batches')
