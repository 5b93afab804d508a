"""Browser tests of the applicant web app through a throw-away local stack (`make test` runs them
with `scripts/with-local-stack.sh`): Debian's Chromium driven by Playwright for Python, axe-core
injected into the same pages. Screenshots and the axe report go to the output folder
(`EMETERAI_BROWSER_OUTPUT`, default `.local/test-output/browser`)."""

import json
import os
import pathlib
import secrets

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "pdf"
CHROMIUM = os.environ.get("EMETERAI_CHROMIUM", "/usr/bin/chromium")
# Flags that work on a machine without a GPU, a sandbox or outside network (HELPERS.md).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
AXE = ROOT / ".local" / "web-npm" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 360, "height": 740}
# The machine is shared and slow at times; waiting longer never makes a wrong page pass.
expect.set_options(timeout=20_000)
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="session")
def base_url():
    url = os.environ.get("EMETERAI_API_URL")
    if not url:
        pytest.fail("EMETERAI_API_URL is not set: run through make test or scripts/with-local-stack.sh")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def output_dir():
    out = pathlib.Path(os.environ.get("EMETERAI_BROWSER_OUTPUT", ROOT / ".local" / "test-output" / "browser"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def phone(browser, base_url):
    """A page the size of a 360 px phone, English forced where a test asks for ?lang=en."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, locale="en-US", accept_downloads=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def account():
    return f"applicant-{secrets.token_hex(4)}@example.id"


class Axe:
    """Runs axe-core in the page and keeps every violation, by the state it was found in."""

    def __init__(self, output_dir):
        self.found = {}
        self.path = output_dir / "axe-report.json"

    def check(self, page, state):
        if not AXE.exists():
            pytest.fail(f"{AXE} is missing: scripts/install-web.sh installs axe-core")
        # Through DevTools, since the pages' Content-Security-Policy (rightly) refuses injected scripts.
        cdp = page.context.new_cdp_session(page)
        cdp.send("Runtime.evaluate", {"expression": AXE.read_text()})
        cdp.detach()
        result = page.evaluate(
            """async () => {
                const r = await axe.run(document, {runOnly: {type: 'tag',
                    values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}});
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary}))}));
            }"""
        )
        self.found[state] = result
        self.path.write_text(json.dumps(self.found, indent=2))
        return result


@pytest.fixture(scope="session")
def axe(output_dir):
    return Axe(output_dir)


def shoot(page, output_dir, name):
    """Screenshots of the current state at 360 px and at 1280 px."""
    size = page.viewport_size
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(output_dir / f"{name}-360.png"), full_page=True, scale="css")
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(output_dir / f"{name}-1280.png"), full_page=True, scale="css")
    page.set_viewport_size(size)
