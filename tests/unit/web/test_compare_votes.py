"""Blind A/B: trials hide which sample is which, votes are stored once and summarised per checkpoint."""

from __future__ import annotations

import re

import pytest

from tests.unit.web.compare_support import BUZZ_STEP, CLEAN_STEP, seed_run


@pytest.fixture
def seeded(migrated_env):
    from core.config import get_settings
    from core.db import session_scope

    with session_scope() as session:
        return seed_run(session, get_settings().data_dir, audio_off=False)


def test_trials_hide_labels_until_decided_and_votes_are_counted(api, seeded):
    from core.db import session_scope
    from core.models import Vote

    opened = api.post(f"/api/v1/runs/{seeded.run_id}/votes/trials")
    assert opened.status_code == 201
    trial = opened.json()
    assert "revealed" not in trial and trial["choice"] is None
    assert trial["a_url"] == f"/compare/blind/{trial['id']}/a.wav"  # names no step, no sample id
    audio = api.get(trial["a_url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"

    assert api.post(f"/api/v1/votes/{trial['id']}", json={"choice": "maybe"}).status_code == 422
    decided = api.post(f"/api/v1/votes/{trial['id']}", json={"choice": "a"}).json()
    winner, loser = decided["trial"]["revealed"]["a"], decided["trial"]["revealed"]["b"]
    assert winner != loser and {winner, loser} <= {"base", f"step {BUZZ_STEP}", f"step {CLEAN_STEP}"}
    rows = {r["name"]: r for r in decided["summary"]["contenders"]}
    assert decided["summary"]["decided"] == 1
    assert (rows[winner]["wins"], rows[winner]["losses"], rows[winner]["score"]) == (1, 0, 1.0)
    assert (rows[loser]["wins"], rows[loser]["losses"], rows[loser]["score"]) == (0, 1, 0.0)
    again = api.post(f"/api/v1/votes/{trial['id']}", json={"choice": "b"})
    assert again.status_code == 409 and "already decided" in again.json()["error"]["message"]
    with session_scope() as session:
        assert session.get(Vote, trial["id"]).choice == "a"


def test_the_least_voted_pair_comes_next_and_same_counts_as_a_tie(api, browser_client, seeded):
    seen = set()
    for _ in range(6):  # 2 prompts x 3 pairs (base, step 2, step 4): every pair once before any repeats
        trial = api.post(f"/api/v1/runs/{seeded.run_id}/votes/trials").json()
        result = api.post(f"/api/v1/votes/{trial['id']}", json={"choice": "same"}).json()
        seen.add((trial["prompt_index"], frozenset(result["trial"]["revealed"].values())))
    assert len(seen) == 6
    summary = api.get(f"/api/v1/runs/{seeded.run_id}/votes").json()
    assert summary["decided"] == 6
    assert [r["name"] for r in summary["contenders"]] == ["base", f"step {BUZZ_STEP}", f"step {CLEAN_STEP}"]
    assert all(r["ties"] == 4 and r["trials"] == 4 and r["score"] == 0.5 for r in summary["contenders"])
    page = browser_client.get(f"/runs/{seeded.run_id}/compare").text
    assert page.count("50% blind") == 3  # in the headers of base, step 2 and step 4


def test_blind_panel_through_the_page(browser_client, seeded):
    page = browser_client.get(f"/runs/{seeded.run_id}/compare").text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}
    panel = browser_client.post(f"/runs/{seeded.run_id}/compare/blind", headers=headers).text
    vote_id = re.search(r'hx-post="/compare/blind/(\d+)"', panel).group(1)
    assert "step" not in re.sub(r"<table.*", "", panel, flags=re.S)  # no label before the vote
    after = browser_client.post(f"/compare/blind/{vote_id}", data={"choice": "b"}, headers=headers).text
    assert "1 vote cast" in after and "You picked" in after and "Next pair" in after


def test_no_pairs_without_checkpoint_samples(api, migrated_env):
    from core.config import get_settings
    from core.db import session_scope
    from core.models import Sample

    with session_scope() as session:
        seeded = seed_run(session, get_settings().data_dir, audio_off=False)
        for sample in session.query(Sample).filter(Sample.variant != "base"):
            session.delete(sample)
    response = api.post(f"/api/v1/runs/{seeded.run_id}/votes/trials")
    assert response.status_code == 409 and "needs two samples" in response.json()["error"]["message"]
