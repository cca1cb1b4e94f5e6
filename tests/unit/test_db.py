"""core.db.get_or_404: a row by primary key, or NotFound naming what was asked for."""

from __future__ import annotations

import pytest


def test_get_or_404_returns_the_row_or_raises_not_found(migrated_env):
    from core.db import get_or_404, session_scope
    from core.errors import NotFound
    from core.models import Dataset

    with session_scope() as session:
        dataset = Dataset(name="voices", trigger="ema_voice")
        session.add(dataset)
        session.flush()
        assert get_or_404(session, Dataset, dataset.id, "dataset") is dataset
        with pytest.raises(NotFound) as caught:
            get_or_404(session, Dataset, dataset.id + 1, "dataset")
    assert caught.value.status == 404 and caught.value.code == "dataset_not_found"
    assert caught.value.message == f"There is no dataset #{dataset.id + 1}: check the link or id."
