"""The key report says which sides of the model a LoRA touches: a voice-mode LoRA (audio side
only) reads "audio only", a normal one "video and audio", on the page and in the API."""

from __future__ import annotations

import pytest

from worker.engine.lora.names import FAMILIES

VOICE_FAMILIES = ("audio_attn1", "audio_attn2", "video_to_audio_attn", "audio_ff")


def _stored_report(families_with_keys: tuple[str, ...]) -> dict:
    """What the key_report job stores for a file whose keys all loaded: the verify report's own form."""
    from worker.engine.lora.verify import FamilyReport, VerifyReport

    families = {name: FamilyReport(keys=8, loaded=8) if name in families_with_keys else FamilyReport()
                for name in FAMILIES}
    total = 8 * len(families_with_keys)
    return VerifyReport(path="x.safetensors", layout="official", total_keys=total, loaded_keys=total,
                        families=families, problems=[], reasons={}, loader_messages=[]).to_dict()


@pytest.fixture
def reports(migrated_env):
    from core.db import session_scope
    from core.models import LoraKeyReport

    with session_scope() as session:
        rows = {}
        for name, families in (("voice", VOICE_FAMILIES), ("full", ("attn1", "ff", "audio_attn1", "audio_ff"))):
            report = _stored_report(families)
            row = LoraKeyReport(layout="upload", file_name=f"{name}.safetensors", path=f"lora_checks/{name}.safetensors",
                                preset="toy", status="done", report=report)
            session.add(row)
            session.flush()
            rows[name] = row.id
        legacy = _stored_report(VOICE_FAMILIES)
        del legacy["sides"]  # stored before the verify report named its sides
        row = LoraKeyReport(layout="upload", file_name="old.safetensors", path="lora_checks/old.safetensors",
                            preset="toy", status="done", report=legacy)
        session.add(row)
        session.commit()
        rows["legacy"] = row.id
        return rows


def test_the_key_report_names_the_sides_a_lora_touches(api, browser_client, reports):
    voice = browser_client.get(f"/lora/reports/{reports['voice']}").text
    assert 'data-sides="audio"' in voice and "audio only" in voice and "the picture is left" in voice
    full = browser_client.get(f"/lora/reports/{reports['full']}").text
    assert 'data-sides="video audio"' in full and "video and audio" in full and "audio only" not in full
    assert api.get(f"/api/v1/lora/reports/{reports['voice']}").json()["sides"] == ["audio"]
    assert api.get(f"/api/v1/lora/reports/{reports['full']}").json()["sides"] == ["video", "audio"]
    assert api.get(f"/api/v1/lora/reports/{reports['legacy']}").json()["sides"] == ["audio"]
    assert "audio only" in browser_client.get(f"/lora/reports/{reports['legacy']}").text
