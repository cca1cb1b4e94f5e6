"""clips: duplicates allowed (flagged by a finding), 64-bit sizes, latest probe job

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_constraint("uq_clip_dataset_hash", type_="unique")
        batch_op.create_index("ix_clips_dataset_hash", ["dataset_id", "content_hash"], unique=False)
        batch_op.alter_column("size_bytes", existing_type=sa.Integer(), type_=sa.BigInteger(),
                              existing_nullable=False)
        batch_op.add_column(sa.Column("probe_job_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_column("probe_job_id")
        batch_op.alter_column("size_bytes", existing_type=sa.BigInteger(), type_=sa.Integer(),
                              existing_nullable=False)
        batch_op.drop_index("ix_clips_dataset_hash")
        batch_op.create_unique_constraint("uq_clip_dataset_hash", ["dataset_id", "content_hash"])
