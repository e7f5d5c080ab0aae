"""ml service: The ML service's own tables: feedback samples, model registry, training jobs (ML service issue).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Reserved slot in the chain; filled by the issue named above.


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
