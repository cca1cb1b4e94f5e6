"""Checking a LoRA file from another trainer in a real browser: a file that is no LoRA gets the
API's message in the form; a LoRA file opens its key report page."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from tests.support import web_server

pytestmark = pytest.mark.e2e


def test_upload_a_lora_file_and_open_its_report(studio_env, tmp_path, browser):
    from playwright.sync_api import expect

    junk = tmp_path / "notes.safetensors"
    junk.write_text("not a safetensors file")
    lora = tmp_path / "other-trainer.safetensors"
    prefix = "diffusion_model.transformer_blocks.0.audio_attn1.to_k"
    save_file({f"{prefix}.lora_A.weight": torch.zeros(4, 16), f"{prefix}.lora_B.weight": torch.zeros(16, 4)}, lora)

    with web_server(studio_env, tmp_path / "server.log") as url:
        page = browser.new_page()
        page.goto(f"{url}/lora/check")
        page.set_input_files("#lora-file", str(junk))
        page.keyboard.press("Tab")
        page.get_by_role("button", name="Check the file").click()
        refusal = page.locator("#lora-check-form .form-status")
        expect(refusal).to_contain_text("safetensors")
        expect(refusal).to_have_attribute("role", "alert")  # an error, announced and in the error colour
        assert refusal.evaluate("el => getComputedStyle(el).color") == "rgb(255, 107, 122)"
        assert page.url.endswith("/lora/check")  # refused: stays on the form

        page.set_input_files("#lora-file", str(lora))
        page.get_by_role("button", name="Check the file").click()
        page.wait_for_url("**/lora/reports/*")
        expect(page.locator("h1")).to_contain_text("other-trainer.safetensors")
