"""A real browser (Debian's chromium, driven by Playwright) against a real API and worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Playwright, expect, sync_playwright

from mediajobs.testing.browser import CHROMIUM, CHROMIUM_ARGS
from mediajobs.testing.stacks import CHECKOUT, Stack
from tests.stacks import StackPool

SCREENSHOTS = CHECKOUT / "test-output" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def web_stack(stack_pool: StackPool) -> Stack:
    """One API + worker shared by the browser tests, to keep the run short."""
    # Private addresses allowed: the import test serves its clip from 127.0.0.1.
    return stack_pool.get("web", import_allow_private="true", concurrency=4).stack


@pytest.fixture(scope="session")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(pw: Playwright) -> Iterator[Browser]:
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def open_page(browser: Browser, base_url: str, viewport: dict[str, int]) -> tuple[Page, list[str]]:
    context = browser.new_context(base_url=base_url, viewport=viewport)  # type: ignore[arg-type]
    # A page's load waits for its scripts and images; at the end of a busy CI run two loads took more than
    # Playwright's default 30 s (they take 0.3-0.9 s here).
    context.set_default_navigation_timeout(60_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{exc.name}: {exc.message}\n{exc.stack}"))
    return page, errors


@pytest.fixture
def api(web_stack: Stack) -> Iterator[httpx.Client]:
    with web_stack.client() as client:
        yield client


@pytest.fixture
def page(browser: Browser, web_stack: Stack) -> Iterator[Page]:
    """A fresh desktop-width tab on the module's stack; an uncaught script error fails the test."""
    page, errors = open_page(browser, web_stack.api_url, DESKTOP)
    yield page
    page.context.close()
    assert not errors, "uncaught errors in the page:\n" + "\n".join(errors)


@pytest.fixture
def phone_page(browser: Browser, web_stack: Stack) -> Iterator[Page]:
    page, errors = open_page(browser, web_stack.api_url, PHONE)
    yield page
    page.context.close()
    assert not errors, "uncaught errors in the page:\n" + "\n".join(errors)


def screenshot(page: Page, name: str) -> Path:
    """Keep a full-page screenshot for a reviewer under test-output/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def drag(page: Page, target: Locator, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press at `start` and release at `end`, fractions of `target`'s width and height, as a person drags.

    The press goes where the element is once it is visible and has stopped moving (Playwright's hover waits
    for both, and scrolls it into view): a box read once, before the page had laid out what loads late
    beside it, sent a CI run's drag past its lane.
    """
    size = target.bounding_box()
    assert size is not None, "nothing to drag across"
    width, height = size["width"], size["height"]
    target.hover(position={"x": width * start[0], "y": height * start[1]})
    page.mouse.down()
    box = target.bounding_box()  # where hover left it
    assert box is not None
    page.mouse.move(box["x"] + width * end[0], box["y"] + height * end[1], steps=5)
    page.mouse.up()


def field_error(form: Locator, label: str) -> Locator:
    """The error slot next to the control labelled `label` (the UI names it "<control id>-error")."""
    control_id = form.get_by_label(label, exact=True).get_attribute("id")
    return form.locator(f"#{control_id}-error")


def unlabeled_controls(page: Page) -> list[str]:
    """Visible form controls and buttons that a screen reader could not name."""
    return page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter(el => !el.closest('[hidden]'))
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                      && !(el.tagName === 'BUTTON' && el.textContent.trim()))
        .map(el => el.outerHTML)""")  # type: ignore[no-any-return]
