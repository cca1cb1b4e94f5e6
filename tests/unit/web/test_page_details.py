"""Details a person meets on the pages: an HTML error page for a dead link, the site icon, facts of a
silent clip, and the jobs table naming what each job works on (found walking the studio in a browser)."""

from __future__ import annotations

import re

from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_a_dead_link_opens_a_page_with_the_message_not_raw_json(api, browser_client):
    page = browser_client.get("/datasets/999", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert page.text.count("There is no dataset #999") == 1 and 'href="/datasets"' in page.text
    bad_id = browser_client.get("/clips/abc", headers=HTML)
    assert bad_id.status_code == 422 and "clip_id" in bad_id.text and "<!doctype html>" in bad_id.text
    unknown = browser_client.get("/no-such-page", headers=HTML)
    assert unknown.status_code == 404 and "<!doctype html>" in unknown.text
    # scripts and htmx keep the JSON error
    assert api.get("/api/v1/datasets/999", headers=HTML).json()["error"]["code"] == "dataset_not_found"
    partial = browser_client.get("/datasets/999/grid", headers={**HTML, "HX-Request": "true"})
    assert partial.json()["error"]["code"] == "dataset_not_found"


def test_pages_name_their_icon_so_browsers_do_not_ask_for_a_missing_favicon(browser_client):
    page = browser_client.get("/datasets").text
    href = re.search(r'<link rel="icon"[^>]*href="([^"]+)"', page).group(1)
    icon = browser_client.get(href)
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_a_silent_clip_says_silent_instead_of_none(api, browser_client, media):
    dataset = create_dataset(api)
    clip_id = upload(api, dataset["id"], media.clip(duration=0.2)).json()[0]["id"]
    run_pending_jobs()
    page = browser_client.get(f"/clips/{clip_id}").text
    facts = re.search(r"<dl.*?</dl>", page, re.S).group(0)
    assert "silent_audio" in page and "None" not in facts
    assert "peak silent" in " ".join(re.sub(r"<[^>]+>", " ", facts).split())


def test_jobs_table_links_each_job_to_what_it_works_on(api, browser_client, media):
    dataset = create_dataset(api)
    clip_id = upload(api, dataset["id"], media.talking_clip()).json()[0]["id"]
    run_pending_jobs()
    table = browser_client.get("/jobs/table").text
    assert f'<a href="/clips/{clip_id}">Clip #{clip_id}</a>' in table


def test_refused_preprocessing_is_shown_as_an_error_on_the_dataset_page(api, browser_client):
    dataset = create_dataset(api)
    page = browser_client.get(f"/datasets/{dataset['id']}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = browser_client.post(f"/datasets/{dataset['id']}/preprocess", data={"csrf_token": token},
                                  follow_redirects=False)
    assert refused.status_code == 422
    banner = re.search(r'<p class="(error|notice)"[^>]*>(.*?)</p>', refused.text, re.S)
    assert banner.group(1) == "error" and "Preprocessing refused" in banner.group(2)
    assert "no trainable clips" in banner.group(2)
