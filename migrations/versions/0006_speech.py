"""speech: transcripts marked auto or user, recognised words, split plans, dataset language

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(16), nullable=False, server_default="en"))
        batch_op.add_column(sa.Column("auto_transcribe", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("captions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transcript_source", sa.String(10), nullable=False, server_default="user"))
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("speech", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("split_plan", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("split_into", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("split_from_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        for name in ("split_from_id", "split_into", "split_plan", "speech"):
            batch_op.drop_column(name)
    with op.batch_alter_table("captions", schema=None) as batch_op:
        batch_op.drop_column("transcript_source")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("auto_transcribe")
        batch_op.drop_column("language")
