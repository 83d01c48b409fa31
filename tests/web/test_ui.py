"""The web UI in a real browser: the jobs dashboard, forms, live updates, reconnecting, API keys, layouts.

The media library is the first page (`/`); the jobs dashboard is `/#/jobs`, its test-job form folded away.
"""

from __future__ import annotations

import os
import re
import signal

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from mediajobs.testing.stacks import Stack
from tests.conftest import MakeStack, submit, wait_state
from tests.web.conftest import (
    DESKTOP,
    PHONE,
    field_error,
    open_page,
    screenshot,
    unlabeled_controls,
)

pytestmark = pytest.mark.slow
PRIORITY = "Priority (0–9, optional)"


def row(page: Page, job_id: str) -> Locator:
    return page.locator(f'li.job[data-job-id="{job_id}"]')


def submit_form(page: Page) -> Locator:
    """The jobs page's test-job form, unfolded."""
    details = page.locator("details.submit-details")
    if not details.evaluate("el => el.open"):
        details.locator("summary").click()
    return page.get_by_role("form", name="Submit a test job")


def progress_of(locator: Locator) -> float:
    return float(locator.get_by_role("progressbar").get_attribute("aria-valuenow") or 0)


def test_long_task_progress_bar_moves_live_to_100_percent(page: Page) -> None:
    page.goto("/#/jobs")
    page.evaluate("window.__sameDocument = true")
    form = submit_form(page)
    form.get_by_label("Kind", exact=True).fill("test.long_task")
    form.get_by_label("Params (JSON object)").fill('{"seconds": 5}')
    form.get_by_role("button", name="Submit job").click()
    link = form.get_by_role("status").get_by_role("link")
    expect(link).to_have_text(re.compile(r"test\.long_task"))
    job_id = (link.get_attribute("href") or "").rsplit("/", 1)[-1]
    job = row(page, job_id)
    bar = job.get_by_role("progressbar")

    expect(job).to_have_attribute("data-state", "running", timeout=10_000)
    page.wait_for_function(
        "el => el.ariaValueNow > 10 && el.ariaValueNow < 60", arg=bar.element_handle(), timeout=10_000
    )
    expect(job.locator(".job-stage")).to_have_text(re.compile(r"Stage \d/5"))
    expect(job.locator(".job-eta")).to_have_text(re.compile(r"about .+ left"))
    first = progress_of(job)
    screenshot(page, "jobs-desktop")
    page.wait_for_function(
        f"el => +el.getAttribute('aria-valuenow') > {first}", arg=bar.element_handle(), timeout=5_000
    )

    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=15_000)
    expect(job.locator(".job-percent")).to_have_text("100 %")
    expect(job).to_have_attribute("data-state", "succeeded", timeout=3_000)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"


def test_cancel_button_stops_a_running_job(page: Page, api: httpx.Client) -> None:
    job = submit(api, "test.sleep", {"seconds": 60})
    page.goto("/#/jobs")
    target = row(page, job["id"])
    expect(target).to_have_attribute("data-state", "running", timeout=15_000)
    target.get_by_role("button", name=re.compile(r"^Cancel job")).click()
    expect(target).to_have_attribute("data-state", "cancelled", timeout=10_000)
    expect(target.get_by_role("button", name=re.compile(r"^Retry job"))).to_be_visible()
    expect(target.get_by_role("button", name=re.compile(r"^Cancel"))).to_be_hidden()
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "cancelled"


def test_job_detail_shows_params_timings_attempts_and_result(page: Page, api: httpx.Client) -> None:
    job = submit(api, "test.add", {"x": 2, "y": 3})
    wait_state(api, job["id"], "succeeded")
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"test\.add"))
    expect(page.get_by_label("Params JSON")).to_contain_text('"x": 2')
    expect(page.get_by_label("Result JSON")).to_have_text("5")
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("1 of 3")
    expect(facts.locator("dt:text-is('Finished') + dd")).not_to_have_text("not yet")
    expect(facts.locator("dt:text-is('Ran for') + dd")).to_have_text(re.compile(r"\d"))
    screenshot(page, "job-detail-desktop")


def test_failed_job_shows_its_error_and_retry_starts_a_new_attempt(page: Page, api: httpx.Client) -> None:
    job = submit(api, "tests.crash")
    wait_state(api, job["id"], "failed")
    page.goto(f"/#/jobs/{job['id']}")
    outcome = page.locator(".outcome")
    expect(outcome).to_contain_text("internal")
    page.get_by_role("button", name=re.compile(r"^Retry job")).click()
    expect(page.locator("dl.facts")).to_contain_text("2 of 3", timeout=5_000)
    expect(page.locator(".job-live .badge")).to_have_text("failed", timeout=10_000)


def test_a_failure_a_retry_cannot_mend_offers_no_retry_and_says_why(page: Page, api: httpx.Client) -> None:
    job = submit(api, "tests.permanent")
    wait_state(api, job["id"], "failed")
    page.goto(f"/#/jobs/{job['id']}")
    outcome = page.locator(".outcome")
    expect(outcome.locator(".job-error")).to_contain_text("the file is a text file, not a video")
    expect(outcome.locator(".error-code")).to_have_text("unsupported_media")
    expect(outcome).to_contain_text("Running it again would fail the same way")
    expect(page.get_by_role("button", name=re.compile(r"^Retry job"))).to_be_hidden()
    page.goto("/#/jobs")
    expect(row(page, job["id"]).locator(".job-error")).to_have_text(
        "the file is a text file, not a video (unsupported_media)"
    )
    expect(row(page, job["id"]).get_by_role("button", name=re.compile(r"^Retry job"))).to_be_hidden()


def test_list_filters_by_state_and_kind_and_pages_to_older_jobs(page: Page, api: httpx.Client) -> None:
    adds = [submit(api, "test.add", {"x": i, "y": 1})["id"] for i in range(21)]
    sleeper = submit(api, "test.sleep", {"seconds": 0})["id"]
    for job_id in [*adds, sleeper]:
        wait_state(api, job_id, "succeeded")
    page.goto("/#/jobs")
    jobs = page.get_by_role("list", name="Jobs, newest first").locator("li.job")
    expect(jobs).to_have_count(20)
    first_page = set(jobs.evaluate_all("els => els.map(e => e.dataset.jobId)"))
    page.get_by_role("button", name="Older →").click()
    expect(page.locator(".page-label")).to_have_text("Page 2")
    expect(jobs.first).to_be_visible()
    assert not first_page & set(jobs.evaluate_all("els => els.map(e => e.dataset.jobId)"))
    page.get_by_role("button", name="← Newer").click()
    expect(page.locator(".page-label")).to_have_text("Page 1")

    page.get_by_role("search", name="Filter jobs").get_by_label("Kind").fill("test.sleep")
    page.get_by_label("State", exact=True).select_option("succeeded")
    expect(row(page, sleeper)).to_be_visible()
    expect(row(page, adds[-1])).to_have_count(0)
    kinds = jobs.locator(".job-kind").evaluate_all("els => els.map(e => e.firstChild.textContent)")
    assert kinds and set(kinds) == {"test.sleep"}
    page.get_by_label("State", exact=True).select_option("failed")
    page.get_by_role("search", name="Filter jobs").get_by_label("Kind").fill("no.such.kind")
    expect(page.get_by_text("No jobs match these filters.")).to_be_visible()


def test_empty_and_invalid_job_form_values_show_errors_next_to_their_fields(page: Page) -> None:
    page.goto("/#/jobs")
    form = submit_form(page)
    kind, params = form.get_by_label("Kind", exact=True), form.get_by_label("Params (JSON object)")
    submit_button = form.get_by_role("button", name="Submit job")

    submit_button.click()
    expect(field_error(form, "Kind")).to_have_text("Enter a job kind, for example test.long_task.")
    expect(kind).to_have_attribute("aria-invalid", "true")
    expect(kind).to_be_focused()

    kind.fill("test.sleep")
    params.fill('{"seconds": ')
    submit_button.click()
    expect(field_error(form, "Kind")).to_be_hidden()
    expect(field_error(form, "Params (JSON object)")).to_contain_text("Not valid JSON")

    params.fill('{"seconds": -1}')  # the server refuses it: a 422 whose error names params.seconds
    submit_button.click()
    expect(field_error(form, "Params (JSON object)")).to_contain_text("seconds")
    expect(field_error(form, "Params (JSON object)")).to_contain_text("greater than or equal to 0")

    kind.fill("no.such.kind")
    params.fill("{}")
    submit_button.click()
    expect(field_error(form, "Kind")).to_contain_text("unknown kind 'no.such.kind'")

    kind.fill("test.add")
    params.fill('{"x": 1, "y": 2}')
    form.get_by_label(PRIORITY).fill("12")
    submit_button.click()
    expect(field_error(form, PRIORITY)).to_contain_text("less than or equal to 9")
    expect(form.locator(".form-error")).to_be_hidden()


def test_media_forms_show_errors_next_to_their_fields_for_empty_values(page: Page) -> None:
    page.goto("/")
    page.get_by_text("Or import from a URL").click()
    imports = page.get_by_role("form", name="Import from a URL")
    imports.get_by_role("button", name="Import").click()
    expect(field_error(imports, "Video URL")).to_have_text("Enter the URL of a video (http:// or https://).")
    imports.get_by_label("Video URL").fill("not a url")
    imports.get_by_role("button", name="Import").click()
    expect(field_error(imports, "Video URL")).to_contain_text("not a full URL")

    upload = page.get_by_role("form", name="Upload a file")
    upload.get_by_role("button", name="Upload").click()
    expect(field_error(upload, "Video or audio file")).to_have_text("Choose a video or audio file to upload.")


def test_server_outage_shows_reconnecting_and_recovers_without_duplicate_rows(
    page: Page,
    web_stack: Stack,
    api: httpx.Client,
) -> None:
    long = submit(api, "test.long_task", {"seconds": 20})
    wait_state(api, long["id"], "running")
    page.goto("/#/jobs")
    jobs = page.get_by_role("list", name="Jobs, newest first").locator("li.job")
    expect(row(page, long["id"])).to_have_attribute("data-state", "running")
    count = jobs.count()
    banner = page.locator("#offline")

    assert web_stack.api is not None
    os.killpg(web_stack.api.pid, signal.SIGTERM)
    web_stack.api.wait(timeout=10)
    expect(banner).to_be_visible(timeout=8_000)
    expect(banner).to_contain_text("reconnecting")
    screenshot(page, "jobs-reconnecting-desktop")
    before = progress_of(row(page, long["id"]))

    web_stack.start_api()
    expect(banner).to_be_hidden(timeout=10_000)
    bar = row(page, long["id"]).get_by_role("progressbar").element_handle()
    page.wait_for_function(f"el => +el.getAttribute('aria-valuenow') > {before}", arg=bar, timeout=10_000)
    page.wait_for_timeout(2_500)  # two list refreshes after the return: still one row per job
    ids = jobs.evaluate_all("els => els.map(e => e.dataset.jobId)")
    assert len(ids) == len(set(ids)) == count
    api.delete(f"/api/v1/jobs/{long['id']}")


@pytest.fixture
def keyed_stack(make_stack: MakeStack) -> Stack:
    """A fresh, empty stack that wants an API key."""
    return make_stack(api_keys="s3cret-key")


def test_api_key_prompt_unlocks_an_empty_dashboard_and_progress_follows_by_polling(
    browser: Browser,
    keyed_stack: Stack,
) -> None:
    page, errors = open_page(browser, keyed_stack.api_url, DESKTOP)
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if r.url.endswith("/events") else None)
    page.goto("/#/jobs")
    prompt = page.get_by_role("form", name="This server needs an API key")
    expect(prompt).to_be_visible()
    expect(prompt).to_contain_text("missing Authorization header")
    prompt.get_by_role("button", name="Use this key").click()
    expect(field_error(prompt, "API key")).to_have_text("Paste an API key to continue.")
    prompt.get_by_label("API key").fill("wrong")
    prompt.get_by_role("button", name="Use this key").click()
    expect(prompt).to_contain_text("invalid API key")
    prompt.get_by_label("API key").fill("s3cret-key")
    prompt.get_by_role("button", name="Use this key").click()
    expect(prompt).to_be_hidden()

    empty = page.locator(".empty")
    expect(empty.get_by_role("heading", name="No jobs yet")).to_be_visible()
    expect(empty).to_contain_text("every upload, import, mask, cut, clip and analysis is one")
    screenshot(page, "jobs-empty-desktop")
    empty.get_by_role("button", name="Fill in a test job").click()
    form = page.get_by_role("form", name="Submit a test job")
    expect(form.get_by_label("Kind", exact=True)).to_have_value("test.long_task")
    form.get_by_label("Params (JSON object)").fill('{"seconds": 3}')
    form.get_by_role("button", name="Submit job").click()
    job = page.locator("li.job").first
    expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100", timeout=15_000)
    expect(job).to_have_attribute("data-state", "succeeded")
    assert streams == [], "EventSource cannot send the key; the page must poll instead"
    assert page.evaluate("localStorage.getItem('mediajobs.apiKey')") == "s3cret-key"
    page.context.close()
    assert not errors


def test_every_control_has_a_label_and_the_job_form_works_from_the_keyboard(page: Page) -> None:
    for route in ("/", "/#/jobs"):
        page.goto(route)
        expect(page.locator(".list-status:not(:empty)")).to_have_count(0)
        for folded in page.locator("details").all():
            folded.evaluate("el => { el.open = true; }")
        assert unlabeled_controls(page) == [], route

    page.goto("/#/jobs")
    kind = submit_form(page).get_by_label("Kind", exact=True)
    for _ in range(40):
        if kind.evaluate("el => el === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(kind).to_be_focused()
    page.keyboard.type("test.add")
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type('{"x": 40, "y": 2}')
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Enter in the priority field submits the form
    expect(submit_form(page).get_by_role("status")).to_contain_text("Submitted test.add")


def test_pages_fit_a_phone_screen_without_sideways_scrolling(phone_page: Page, api: httpx.Client) -> None:
    job = submit(api, "test.long_task", {"seconds": 3})
    page = phone_page
    fits = "document.documentElement.scrollWidth <= window.innerWidth"
    pages = (("/#/jobs", "jobs-phone"), (f"/#/jobs/{job['id']}", "job-detail-phone"), ("/", "media-phone"))
    for route, name in pages:
        page.goto(route)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        expect(page.locator(".list-status:not(:empty), .job-detail[hidden]")).to_have_count(0)
        assert page.evaluate(fits), f"{route} is wider than a {PHONE['width']} px screen"
        screenshot(page, name)
    wait_state(api, job["id"], "succeeded")
