"""lifecycle: Rankings, live predictions and discovery reports (lifecycle issue).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Reserved slot in the chain; filled by the issue named above.


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
