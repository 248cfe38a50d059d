"""The web console (hvr/console/) in a real browser: Debian's chromium driven by playwright, on the embedded stack.

One browser and one stack for the module; each test its own browser context (its own sessionStorage, so its own
key). No browser is downloaded: the system's chromium is used, and the tests skip, saying so, where there is none.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hvr.local.embedded import EmbeddedStack
from tests.e2e.conftest import client

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
BENCH = Path(__file__).resolve().parents[2] / "bench"
REQUEST = {"mode": "t2v", "prompt": "a paper boat drifting across a puddle, soft morning light",
           "resolution": "512x512", "aspect_ratio": "1:1", "duration_s": 2, "quality": "draft", "deadline_s": 7200,
           "max_cost_usd": "0.50"}
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM is not None
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        assert errors == [], f"the console threw: {errors}"
    finally:
        context.close()


@pytest.fixture(scope="module")
def delivered(stack: EmbeddedStack) -> dict[str, Any]:
    """A delivered job and a budget: something to spend against."""
    acme = client(stack, "acme-key")
    assert acme.put("/v1/budgets/global", json={"limit_usd": "1.00", "thresholds": [0.5, 0.8, 1.0]}).status_code == 200
    job = acme.post("/v1/jobs", json=REQUEST).json()
    for _ in range(300):
        job = acme.get(f"/v1/jobs/{job['id']}").json()
        if job["status"] == "succeeded":
            return dict(job)
        assert job["status"] not in ("failed", "rejected", "cancelled", "expired"), job
        time.sleep(0.1)
    raise AssertionError(f"{job['id']} did not finish: {job['status']}")


def sign_in(page: Any, stack: EmbeddedStack, key: str = "acme-key", hash_: str = "") -> None:
    page.goto(f"{stack.url}/{hash_}")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_selector("#nav:not([hidden])")
    assert key not in page.url  # sessionStorage only, never in a URL


def test_the_console_and_its_files_are_served_offline_with_their_types(stack: EmbeddedStack) -> None:
    index = httpx.get(f"{stack.url}/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert "http" not in index.text.replace('http-equiv', '')  # no remote asset
    for name, kind in (("app.js", "text/javascript"), ("api.js", "text/javascript"), ("ui.js", "text/javascript"),
                       ("style.css", "text/css")):
        served = httpx.get(f"{stack.url}/console/{name}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind), name
        assert "//cdn" not in served.text and "https://" not in served.text, name
    assert httpx.get(f"{stack.url}/console/../pyproject.toml").status_code == 404
    assert httpx.get(f"{stack.url}/console/nothing.js").status_code == 404


def test_a_wrong_key_shows_a_clear_message(page: Any, stack: EmbeddedStack) -> None:
    page.goto(f"{stack.url}/")
    page.fill("#key", "not-a-key")
    page.click("button[type=submit]")
    message = page.wait_for_selector("#key-error").inner_text()
    assert "not valid" in message and stack.url in message
    assert page.evaluate("sessionStorage.getItem('hvr.apiKey')") is None
    assert page.is_hidden("#nav")


def test_submit_watch_it_finish_and_play_the_video(page: Any, stack: EmbeddedStack) -> None:
    sign_in(page, stack, hash_="#/new")
    page.wait_for_selector("#candidates tbody tr")
    quote = client(stack, "acme-key").post("/v1/quotes", json=REQUEST).json()
    offers = {c["offer"] for c in quote["candidates"]}
    shown = page.eval_on_selector_all("#candidates tbody tr td:first-child", "cells => cells.map(c => c.textContent)")
    assert set(shown) == offers and len(shown) == len(offers)
    page.fill("#n-duration_s", "3")  # a change re-quotes, debounced
    page.wait_for_selector("#quote-state:empty", state="attached")
    page.click("#submit")
    page.wait_for_url("**/#/jobs/job_*")
    page.wait_for_selector("#output", timeout=60_000)  # the video appears once the job has succeeded
    assert "succeeded" in page.inner_text("main")
    job_id = page.url.rsplit("/", 1)[1]
    job = client(stack, "acme-key").get(f"/v1/jobs/{job_id}").json()
    shown = page.eval_on_selector_all("#candidates tbody tr td:first-child", "cells => cells.map(c => c.textContent)")
    assert set(shown) == {c["offer"] for c in job["routing"]["candidates"]}
    reasons = page.inner_text("#candidates")
    assert "chosen" in reasons and any(r in reasons for c in job["routing"]["candidates"] for r in c["reasons"])
    assert page.inner_text("#attempts").count("succeeded") == 1
    played = page.evaluate("""async () => {
        const v = document.querySelector('#output');
        if (v.readyState < 2) await new Promise((ok, no) => {
            v.addEventListener('loadeddata', ok, {once: true});
            v.addEventListener('error', () => no(v.error.message));
        });
        const ready = v.readyState;
        await v.play();
        const start = v.currentTime;
        await new Promise(ok => setTimeout(ok, 600));
        return {ready, start, now: v.currentTime, error: v.error && v.error.message};
    }""")
    assert played["ready"] >= 2 and played["error"] is None, played
    assert played["now"] > played["start"], played


def sample_png() -> Path:
    image = next((Path(__file__).resolve().parents[2] / "samples" / "requests" / "inputs").glob("*.png"), None)
    assert image is not None, "samples/requests/inputs has no PNG"
    return image


def test_an_upload_goes_to_its_presigned_put_from_the_browser(page: Any, stack: EmbeddedStack) -> None:
    sign_in(page, stack, hash_="#/new")
    page.select_option("#n-mode", "i2v")
    image = sample_png()
    # The upload re-quotes with the image's ref; the quote that follows must not erase that the file is uploaded
    # (it did when both shared one line: the text lived ~350 ms, and a browser on a busy machine missed it).
    with page.expect_response(lambda r: r.url.endswith("/v1/quotes") and '"image"' in (r.request.post_data or "")):
        page.set_input_files("#n-image", str(image))
    page.wait_for_selector("#quote-state:empty", state="attached")
    assert page.inner_text("#n-image-state") == f"{image.name} uploaded"  # the PUT (a CORS preflight) answered
    assert stack.stack is not None
    stored = stack.clients["s3"].list_objects_v2(Bucket=stack.stack.bucket_names["OutputsBucket"],
                                                 Prefix="uploads/acme/")
    assert any(o["Size"] == image.stat().st_size for o in stored.get("Contents", []))


def test_a_submit_while_a_file_is_still_uploading_waits_for_it(page: Any, stack: EmbeddedStack) -> None:
    held: list[Any] = []  # the presigned PUT, answered only once the submit has been tried
    page.route("**/*", lambda route: held.append(route) if route.request.method == "PUT" else route.continue_())
    sign_in(page, stack, hash_="#/new")
    page.select_option("#n-mode", "i2v")
    image = sample_png()
    page.set_input_files("#n-image", str(image))
    page.wait_for_selector(f"#n-image-state:has-text('Uploading {image.name}')")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1, "the upload's PUT never left the browser"
    page.click("#submit")
    page.wait_for_selector("#flash :text('Wait for image to finish uploading.')")
    assert page.url.endswith("#/new")  # no job: the request would have gone without its image
    held[0].continue_()
    page.wait_for_selector(f"#n-image-state:has-text('{image.name} uploaded')")
    page.click("#submit")
    page.wait_for_url("**/#/jobs/job_*")
    job = client(stack, "acme-key").get(f"/v1/jobs/{page.url.rsplit('/', 1)[1]}").json()
    assert job["request"]["image"].startswith("s3://")


def test_the_jobs_list_filters_and_the_spend_chart_renders(page: Any, stack: EmbeddedStack,
                                                          delivered: dict[str, Any]) -> None:
    sign_in(page, stack, hash_="#/jobs?status=succeeded&provider=local")
    page.wait_for_selector("#jobs-table")
    assert delivered["id"] in page.inner_text("#jobs-table")
    page.goto(f"{stack.url}/#/jobs?provider=veo")
    page.wait_for_selector("text=No jobs match")
    page.goto(f"{stack.url}/#/spend")
    page.wait_for_selector("#spend-chart rect[data-provider=local]")
    assert page.locator("#spend-chart .budget-line").count() == 1
    assert page.locator("#spend-chart .threshold").count() == 2
    assert "global" in page.inner_text("#budgets") and "normal" in page.inner_text("#budgets")
    assert page.locator("#tco tbody tr").count() == 4
    page.wait_for_selector("#scorecard")


def test_a_member_sees_its_tenant_and_no_admin_pages(page: Any, stack: EmbeddedStack) -> None:
    sign_in(page, stack, key="member-key", hash_="#/providers")
    page.wait_for_selector("#offers")
    assert "admin keys" in page.inner_text("main")
    page.goto(f"{stack.url}/#/spend")
    page.wait_for_selector("#spend-chart")
    page.wait_for_selector("#scorecard")
    assert "global" not in page.inner_text("main")  # not its tenant's: an admin's view only


@pytest.mark.slow
def test_screenshots_of_every_page(browser: Any, stack: EmbeddedStack, delivered: dict[str, Any]) -> None:
    """bench/console-<page>[-phone].png, at 1280x720 and at a phone's 390 px."""
    BENCH.mkdir(exist_ok=True)
    items = [{**REQUEST, "item_id": "boat"}, {**REQUEST, "item_id": "bad", "duration_s": -1}]
    acme = client(stack, "acme-key")
    campaign = acme.post("/v1/campaigns", json={"name": "console-shots", "items": items}).json()
    for _ in range(300):  # finished, so its page shows its output
        if acme.get(f"/v1/campaigns/{campaign['id']}").json()["counts"]["succeeded"] == 1:
            break
        time.sleep(0.1)
    pages = {"jobs": "#/jobs", "job": f"#/jobs/{delivered['id']}", "new": "#/new", "spend": "#/spend",
             "campaigns": "#/campaigns", "campaign": f"#/campaigns/{campaign['id']}", "providers": "#/providers"}
    for suffix, viewport in (("", {"width": 1280, "height": 720}), ("-phone", {"width": 390, "height": 844})):
        context = browser.new_context(viewport=viewport)
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{stack.url}/")
            page.screenshot(path=str(BENCH / f"console-key{suffix}.png"))
            sign_in(page, stack)
            for name, hash_ in pages.items():
                page.goto(f"{stack.url}/{hash_}")
                page.wait_for_load_state("networkidle")
                page.locator("text=Loading…").wait_for(state="detached")
                if name == "new":
                    page.wait_for_selector("#candidates")
                page.screenshot(path=str(BENCH / f"console-{name}{suffix}.png"), full_page=True)
        finally:
            context.close()
