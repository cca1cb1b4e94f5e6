"""metrics.loss_video may be empty: the voice and audio_only training modes score no video

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-20 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("loss_video", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE metrics SET loss_video = 0 WHERE loss_video IS NULL")
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("loss_video", existing_type=sa.Float(), nullable=False)
