"""The web console at `/` in a real browser (headless Chromium, Playwright).

Through the page only: a key typed in, a guideline submitted, its steps seen live with
their times, the checklist ticked, copied as Markdown and downloaded as JSON; history
with its status filter and paging; a job opened, cancelled and deleted. The browser
console must log no error, and screenshots at desktop and phone width are saved under
`test-artifacts/console/`.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from tests.support.openai_stub import StubServer

GUIDELINE = """\
Adults with asthma should use an inhaled corticosteroid every day.
Clinicians must check inhaler technique at every review.
Avoid long-acting beta agonists without an inhaled corticosteroid.
Offer a written asthma action plan to every adult with asthma.
"""
TIMEOUT_MS = 30_000


def _console_errors(page: Page) -> list[str]:
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            errors.append(f"console.{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    return errors


def _enter_key_by_keyboard(page: Page, key: str) -> None:
    """Tab from the top of the page to the key field, type, press Enter."""
    page.locator("body").focus()
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "key-input":
            break
    assert page.evaluate("document.activeElement.id") == "key-input"
    page.keyboard.type(key)
    page.keyboard.press("Enter")


def _submit(page: Page, text: str) -> None:
    page.get_by_label("Guideline text").fill(text)
    page.get_by_role("button", name="Submit", exact=True).click()


def _wait_until_none_runs(api: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while api.get("/jobs", params={"status": ["pending", "processing"]}).json()["items"]:
        assert time.monotonic() < deadline, "jobs did not finish"
        time.sleep(0.2)


@pytest.mark.slow
def test_the_console_in_a_browser(
    browser: Browser,
    console_app: tuple[str, str],
    openai_stub: StubServer,
    artifacts: Path,
    tmp_path: Path,
) -> None:
    url, key = console_app
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = _console_errors(page)

    response = page.goto(url + "/")
    assert response is not None
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    assert policy.startswith("default-src 'self'")
    assert "unsafe-inline" not in policy

    # The key, by keyboard; kept in sessionStorage only, never in the URL.
    _enter_key_by_keyboard(page, key)
    expect(page.locator("#key-status")).to_contain_text("Key accepted")
    assert page.evaluate("sessionStorage.getItem('guideline-ingest.api-key')") == key
    assert page.evaluate("localStorage.length") == 0
    assert key not in page.url

    # A submitted guideline: the steps appear as they happen, each with its time.
    openai_stub.configure(latency_ms=2000)
    guideline_file = tmp_path / "asthma-in-adults.md"
    guideline_file.write_text(GUIDELINE)
    page.locator("#guideline-file").set_input_files(guideline_file)
    expect(page.get_by_label("Guideline text")).to_have_value(GUIDELINE)
    expect(page.locator("#char-count")).to_have_text(f"{len(GUIDELINE)} / 200,000 characters")
    page.get_by_role("button", name="Submit", exact=True).click()
    steps = page.locator("#job-steps")
    expect(steps.locator("[data-step=summarize][data-state=running]")).to_be_visible()
    expect(steps.locator("[data-step=checklist][data-state=running]")).to_be_visible()
    expect(page.locator("#job-status")).to_have_text("completed", timeout=TIMEOUT_MS)
    for step in ("summarize", "checklist"):
        expect(steps.locator(f"[data-step={step}]")).to_have_attribute("data-state", "done")
        took = steps.locator(f"[data-step={step}] .step-time").inner_text()
        assert re.fullmatch(r"\d+\.\d s", took), took
        assert float(took.split()[0]) >= 1.5  # the stub's 2 s, measured by the page
    expect(page.get_by_role("heading", name="asthma-in-adults.md")).to_be_visible()
    expect(page.locator("#job-summary")).to_contain_text("inhaled corticosteroid")
    usage = page.locator("#job-usage").inner_text()
    assert re.search(r"= [1-9]", usage), usage

    # The checklist: checkboxes a reader ticks (in the page only).
    boxes = page.locator("#job-checklist").get_by_role("checkbox")
    assert boxes.count() >= 2
    first_item = page.locator("#job-checklist label").first.inner_text()
    boxes.first.check()
    expect(boxes.first).to_be_checked()
    page.screenshot(path=artifacts / "console-desktop.png", full_page=True)

    page.get_by_role("button", name="Copy as Markdown").click()
    expect(page.locator("#job-notice")).to_have_text("Copied as Markdown.")
    markdown = page.evaluate("navigator.clipboard.readText()")
    assert markdown.startswith("# asthma-in-adults.md\n")
    assert f"- [x] {first_item}\n" in markdown
    assert markdown.count("- [ ] ") == boxes.count() - 1

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download JSON").click()
    downloaded = download_info.value.path()
    job = json.loads(Path(downloaded).read_text())
    assert job["status"] == "completed"
    assert job["checklist"][0] == first_item
    done_id = job["event_id"]

    # History: newest first, paging with the cursor, the status filter, open a job.
    openai_stub.configure(latency_ms=0)
    for number in range(10):
        submitted = api.post("/jobs", json={"input_text": f"Guideline {number}. Check it."})
        assert submitted.status_code == 202
    _wait_until_none_runs(api)
    page.get_by_role("button", name="Refresh").click()
    rows = page.locator("#history-list .history-row")
    expect(rows).to_have_count(10)
    page.get_by_role("button", name="Older").click()
    expect(page.locator("#history-page")).to_have_text("Page 2")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-event-id", done_id)
    page.get_by_role("button", name="Newest").click()
    expect(rows).to_have_count(10)

    # Cancel a job while it runs (with a confirmation), then find it by status.
    openai_stub.configure(latency_ms=20_000)
    _submit(page, "Slow guideline.\nClinicians should wait for this one.")
    expect(page.locator("#job-status")).to_contain_text("processing")
    page.get_by_role("button", name="Cancel job").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Cancel this job?")
    dialog.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-status")).to_have_text("cancelled")
    cancelled_id = page.locator("#job-id").inner_text().split()[1]
    expect(page.get_by_role("button", name="Retry job")).to_be_visible()
    openai_stub.configure(latency_ms=0)

    page.get_by_label("Status").select_option("cancelled")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-event-id", cancelled_id)

    # Open the completed job from history, then come back to the cancelled one.
    page.get_by_label("Status").select_option("completed")
    expect(rows).to_have_count(10)
    page.get_by_role("button", name="Older").click()
    expect(rows.first).to_have_attribute("data-event-id", done_id)
    rows.first.click()
    expect(page.get_by_role("heading", name="asthma-in-adults.md")).to_be_visible()
    expect(page.locator("#job-id")).to_contain_text(done_id)

    # Retry the cancelled job (opened from history), then delete it, by keyboard in the
    # confirmation: it is gone from history and from the API.
    page.get_by_label("Status").select_option("cancelled")
    expect(rows.first).to_have_attribute("data-event-id", cancelled_id)
    rows.first.click()
    expect(page.locator("#job-id")).to_contain_text(cancelled_id)
    page.get_by_role("button", name="Retry job").click()
    expect(page.locator("#job-notice")).to_have_text("Job completed.")
    expect(page.locator("#job-status")).to_have_text("completed")
    expect(page.locator("#history-empty")).to_be_visible()  # no cancelled job any more
    page.get_by_role("button", name="Delete job").click()
    expect(dialog).to_contain_text("erased for good")
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Delete job")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#job-panel")).to_be_hidden()
    expect(page.locator("#history-notice")).to_have_text("Job deleted.")
    assert api.get(f"/jobs/{cancelled_id}").status_code == 404
    page.get_by_label("Status").select_option("")
    expect(rows).to_have_count(10)
    expect(page.locator(f'[data-event-id="{cancelled_id}"]')).to_have_count(0)

    # Phone width: nothing wider than the screen.
    rows.first.click()
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("heading", name="Guideline 9").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=artifacts / "console-phone.png", full_page=True)

    # "Forget key" clears the tab's storage.
    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#key-status")).to_have_text("Key forgotten.")
    assert page.evaluate("sessionStorage.length") == 0

    assert errors == []
    context.close()
    api.close()


@pytest.mark.slow
def test_refusals_are_said_in_words(browser: Browser, console_app: tuple[str, str]) -> None:
    """A wrong key, and the API's problem details (title, detail, fields) for bad text."""
    url, key = console_app
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = _console_errors(page)
    page.goto(url + "/")

    page.get_by_label("Your API key").fill("gi_wrong_key")
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-status")).to_contain_text("The service refused this key")
    assert page.evaluate("sessionStorage.length") == 0

    page.get_by_label("Your API key").fill(key)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-status")).to_contain_text("Key accepted")
    too_long = "a" * 200_001
    page.get_by_label("Guideline text").fill(too_long)
    expect(page.locator("#char-count")).to_have_text("200,001 / 200,000 characters (1 too many)")
    page.get_by_role("button", name="Submit", exact=True).click()
    problem = page.get_by_role("alert")
    expect(problem).to_contain_text("422 Unprocessable")
    expect(problem).to_contain_text("input_text")

    # The browser reports the refused requests themselves; nothing else may be logged.
    unexpected = [e for e in errors if "status of 401" not in e and "status of 422" not in e]
    assert unexpected == []
    assert len(errors) == 2
    page.close()


@pytest.mark.slow
def test_the_default_embedded_mode_and_the_readme_screenshot(
    browser: Browser, offline_console_app: tuple[str, str], artifacts: Path, tmp_path: Path
) -> None:
    """The offline provider's result in the page (docs/console.png is this screenshot);
    the console is no part of the OpenAPI document, and the API's answers are unchanged
    (no CSP on them)."""
    url, key = offline_console_app
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    errors = _console_errors(page)
    page.goto(url + "/")
    page.get_by_label("Your API key").fill(key)
    page.get_by_role("button", name="Use key").click()
    guideline_file = tmp_path / "asthma-in-adults.md"
    guideline_file.write_text(GUIDELINE)
    page.get_by_label("Open a .txt or .md file").set_input_files(guideline_file)
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page.locator("#job-status")).to_have_text("completed")
    items = page.locator("#job-checklist label")
    expect(items.first).to_have_text(
        "Ensure adults with asthma use an inhaled corticosteroid every day."
    )
    expect(items).to_have_count(4)
    page.get_by_role("checkbox").nth(1).check()
    page.screenshot(path=artifacts / "console-offline.png", full_page=True)
    assert errors == []
    page.close()

    document = httpx.get(f"{url}/openapi.json").json()
    assert "/" not in document["paths"]
    assert not [p for p in document["paths"] if p.startswith("/console")]
    answer = httpx.get(f"{url}/jobs", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    assert "content-security-policy" not in answer.headers
