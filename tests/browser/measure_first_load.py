"""Benchmark (not a test): what the web app's first load costs, in Debian's Chromium through the
local stack. Run with `scripts/with-local-stack.sh .local/venv/bin/python tests/browser/measure_first_load.py`
(or `make bench-web`); results go in BENCHMARKS.md.

Measures, with the cache disabled, on a 360 px phone:
- bytes transferred (as encoded on the wire) for the first load, before pdf.js, and for pdf.js;
- time to interactive: navigation start to the app's `emeterai-ready` mark (sign-in form wired);
both without throttling and under DevTools' "Slow 3G" profile (2,000 ms RTT, 50 KB/s each way).
"""

import json
import os
import pathlib
import statistics
import sys

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conftest import CHROMIUM, CHROMIUM_ARGS, FIXTURES, PHONE  # noqa: E402

SLOW_3G = {"offline": False, "latency": 2000, "downloadThroughput": 50_000, "uploadThroughput": 50_000}
RUNS = int(os.environ.get("RUNS", "5"))


def measure(browser, base_url, throttle):
    context = browser.new_context(viewport=PHONE, locale="en-US")
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    if throttle:
        cdp.send("Network.emulateNetworkConditions", throttle)
    urls, sizes = {}, {}
    # pdf.js's worker fetches its script in its own target: counted through Playwright's events.
    worker_bytes = []
    page.on("requestfinished", lambda r: worker_bytes.append(r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"])
            if "pdf.worker" in r.url else None)
    cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
    cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
    page.goto(f"{base_url}/?lang=en", wait_until="load", timeout=120_000)
    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
    tti = page.evaluate("performance.getEntriesByName('emeterai-ready')[0].startTime")
    page.wait_for_timeout(200)
    first = sum(size for rid, size in sizes.items() if "/vendor/pdfjs/" not in urls.get(rid, ""))
    requests = len(sizes)
    # Then the viewer: sign in and choose a PDF.
    page.get_by_label("Account").fill("bench")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Available:").first.wait_for(timeout=120_000)
    page.get_by_label("PDF", exact=True).set_input_files(str(FIXTURES / "signed-selfsigned-a4-v1.7-pdfjs.pdf"))
    page.get_by_text("PDF ready").first.wait_for(timeout=300_000)
    pdfjs = sum(size for rid, size in sizes.items() if "/vendor/pdfjs/" in urls.get(rid, "") and "pdf.worker" not in urls[rid])
    pdfjs += sum(worker_bytes)
    context.close()
    return {"first_load_bytes": first, "first_load_requests": requests, "tti_ms": round(tti), "pdfjs_bytes": pdfjs}


def main():
    base_url = os.environ["EMETERAI_API_URL"].rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        report = {}
        for name, throttle, runs in [("local", None, RUNS), ("slow_3g", SLOW_3G, max(1, RUNS // 2))]:
            samples = [measure(browser, base_url, throttle) for _ in range(runs)]
            report[name] = {
                "runs": runs,
                "first_load_bytes": samples[0]["first_load_bytes"],
                "first_load_requests": samples[0]["first_load_requests"],
                "pdfjs_bytes": samples[0]["pdfjs_bytes"],
                "tti_ms_median": statistics.median(s["tti_ms"] for s in samples),
                "tti_ms_max": max(s["tti_ms"] for s in samples),
            }
        browser.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
