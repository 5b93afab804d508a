"""The applicant's journey in a real browser, by the accessible names of API.md: sign in, buy 2,
pay on the simulator's page, upload a signed letter, place the stamp by clicking the rendered
page, see STAMPED, download and check the file's stamp, refund the unused unit, see a refused
upload's reason, and open the QR code's verification page as a phone would."""

import hashlib
import json
import re
import urllib.request

from playwright.sync_api import expect

from conftest import FIXTURES, shoot

LETTER = FIXTURES / "signed-approval-qualified-a4-v1.7-718k.pdf"  # an A4 letter the applicant signed
NOT_A4 = FIXTURES / "mixed-sizes-letter-portrait-landscape-odd.pdf"
ENCRYPTED = FIXTURES / "enc-aes128-user-password-a4.pdf"
OVER_LIMIT = FIXTURES / "xrefstream-objstm-a4-v1.5-831k-over-limit.pdf"


def sign_in(page, base_url, account, query="?lang=en"):
    page.goto(f"{base_url}/{query}")
    page.get_by_label("Account").fill(account)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(re.compile(r"^Available: \d+$"))).to_be_visible()


def verify_file(base_url, pdf: bytes):
    request = urllib.request.Request(f"{base_url}/v1/verify", data=pdf, method="POST",
                                     headers={"Content-Type": "application/pdf", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def no_violations(axe, page, state):
    violations = axe.check(page, state)
    assert violations == [], f"axe found in {state}: " + json.dumps(violations, indent=1)


def test_applicant_journey(phone, base_url, account, output_dir, axe):
    page = phone
    requested = []
    page.on("request", lambda r: requested.append(r.url))

    page.goto(f"{base_url}/?lang=en")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shoot(page, output_dir, "01-sign-in")
    no_violations(axe, page, "sign-in")

    page.get_by_label("Account").fill(account)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Available: 0", exact=True)).to_be_visible()

    # Buy 2: the price is shown before paying, then the invoice with its Pay link.
    page.get_by_label("Quantity").fill("2")
    expect(page.locator("#price")).to_contain_text(re.compile(r"Total: Rp\s?20[.,]000"))
    page.get_by_role("button", name="Buy").click()
    pay = page.get_by_role("link", name="Pay", exact=True)
    expect(pay).to_be_visible()
    invoice = page.locator("#invoices > li").first
    expect(invoice).to_contain_text("PENDING")
    expect(invoice).to_contain_text(re.compile(r"Rp\s?20[.,]000"))
    shoot(page, output_dir, "02-invoice")
    no_violations(axe, page, "invoice pending")

    # Pay on the simulator's page; it sends the payer back to the app.
    pay.click()
    expect(page.get_by_role("button", name="Pay", exact=True)).to_be_visible()
    shoot(page, output_dir, "03-payment-page")
    page.get_by_role("button", name="Pay", exact=True).click()
    page.wait_for_url(re.compile(re.escape(base_url) + r"/"))
    expect(page.get_by_text("Available: 2", exact=True)).to_be_visible(timeout=30_000)
    expect(invoice.locator(".state")).to_have_text("PAID")
    expect(invoice).to_contain_text("Used 0 · remaining 2 · refunded 0")
    assert "order_id" not in page.url, "the return query is cleaned from the address"
    shoot(page, output_dir, "04-paid")
    no_violations(axe, page, "paid")

    # pdf.js is fetched only once a PDF is chosen.
    assert not [u for u in requested if "/vendor/pdfjs/" in u], "pdf.js loaded before a PDF was chosen"
    page.get_by_label("PDF", exact=True).set_input_files(str(LETTER))
    expect(page.locator("#pdf-state")).to_have_text(re.compile(r"^PDF ready: 1 page"))
    assert [u for u in requested if "/vendor/pdfjs/pdf.min.mjs" in u]
    expect(page.get_by_label("Page", exact=True)).to_have_value("1")
    expect(page.locator("#sig-boxes .sig-box")).to_have_count(1)  # the applicant's own signature

    # Click the rendered page: the stamp's centre goes there. On the signature, it is refused at once.
    canvas = page.locator("#page-canvas")
    box = canvas.bounding_box()
    mm = box["width"] / 210
    canvas.click(position={"x": 60 * mm, "y": 50 * mm}, force=True)
    expect(page.locator("#place-problem")).to_contain_text("would cover an existing signature")
    canvas.click(position={"x": 160 * mm, "y": 120 * mm}, force=True)
    x = float(page.get_by_label("X (mm)").input_value())
    y = float(page.get_by_label("Y (mm)").input_value())
    assert abs(x - 144) <= 1 and abs(y - 104) <= 1, (x, y)
    expect(page.locator("#place-problem")).to_be_hidden()
    shoot(page, output_dir, "05-placed")
    no_violations(axe, page, "placement")

    page.get_by_role("button", name="Stamp", exact=True).click()
    document = page.locator("#documents > li").first
    expect(document.locator(".state")).to_have_text("STAMPED", timeout=60_000)
    expect(page.get_by_text("Available: 1", exact=True)).to_be_visible()
    serial = document.locator("code").inner_text()
    assert re.fullmatch(r"[0-9A-Z]{22}", serial), serial
    shoot(page, output_dir, "06-stamped")
    no_violations(axe, page, "stamped")

    # Nothing is lost on a reload: the state comes from the API.
    page.reload()
    expect(page.get_by_text("Available: 1", exact=True)).to_be_visible()
    expect(page.locator("#documents > li").first.locator(".state")).to_have_text("STAMPED")

    # Download and check the stamp in the file: the issuer's valid signature, registered serial.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download", exact=True).click()
    stamped_path = output_dir / "stamped-letter.pdf"
    download.value.save_as(stamped_path)
    stamped = stamped_path.read_bytes()
    original = LETTER.read_bytes()
    assert stamped[: len(original)] == original, "an incremental update keeps the signed original byte for byte"
    stamps = verify_file(base_url, stamped)["stamps"]
    assert [(s["serial"], s["signature_valid"], s["registered"], s["unmodified_since_stamp"]) for s in stamps] == [
        (serial, True, True, True)
    ], stamps

    # A refused upload shows its reason and costs nothing: the stamped file again.
    page.get_by_label("PDF", exact=True).set_input_files(str(stamped_path))
    expect(page.locator("#pdf-state")).to_have_text(re.compile(r"^PDF ready"))
    canvas.click(position={"x": 100 * mm, "y": 200 * mm}, force=True)
    page.get_by_role("button", name="Stamp", exact=True).click()
    refused = page.locator("#documents > li").first
    expect(refused.locator(".state")).to_have_text("REJECTED", timeout=60_000)
    expect(refused.locator(".reason")).to_contain_text("already carries an e-Meterai")
    expect(page.get_by_text("Available: 1", exact=True)).to_be_visible()
    shoot(page, output_dir, "07-rejected")

    # Refund the unused unit.
    invoice.get_by_role("button", name="Refund", exact=True).click()
    expect(page.get_by_text("Available: 0", exact=True)).to_be_visible()
    expect(invoice).to_contain_text("Refund of")
    expect(invoice).not_to_contain_text("paid back")
    expect(invoice.get_by_role("button", name="Refund", exact=True)).to_have_count(0)
    shoot(page, output_dir, "08-refund")
    no_violations(axe, page, "refund requested")

    # The QR code's page, opened as a phone's browser opens it (Accept: text/html).
    response = page.goto(f"{base_url}/v1/verify/{serial}?lang=en")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", name="✓ Registered")).to_be_visible()
    expect(page.get_by_text(serial, exact=True)).to_be_visible()
    expect(page.get_by_text(hashlib.sha256(stamped).hexdigest(), exact=True)).to_be_visible()
    page.get_by_label("Choose PDF").set_input_files(str(stamped_path))
    result = page.get_by_role("status")
    expect(result).to_contain_text("exactly the stamped document registered for this serial")
    expect(result).to_contain_text("✓ Signature valid")
    expect(result).to_contain_text("✓ Serial registered")
    expect(result).to_contain_text("✓ Unchanged since stamped")
    shoot(page, output_dir, "09-verify")
    no_violations(axe, page, "verification page")

    unknown = page.goto(f"{base_url}/v1/verify/0000000000000000000000")
    assert unknown.status == 404
    expect(page.get_by_role("heading", name="✗ Tidak terdaftar")).to_be_visible()
    shoot(page, output_dir, "10-verify-unknown")
    no_violations(axe, page, "verification 404")


def test_the_browser_refuses_what_the_server_would_before_any_upload(phone, base_url, account, output_dir):
    page = phone
    uploads = []
    page.on("request", lambda r: uploads.append(r.url) if r.method in ("PUT", "POST") and "/v1/documents" in r.url else None)
    sign_in(page, base_url, account)
    field = page.get_by_label("PDF", exact=True)
    state = page.locator("#pdf-state")
    for fixture, words in [
        (NOT_A4, "Every page must be A4"),
        (ENCRYPTED, "protected by a password"),
        (OVER_LIMIT, "larger than 800,000 bytes"),
    ]:
        field.set_input_files(str(fixture))
        expect(state).to_contain_text(words)
        expect(page.locator("#placement")).to_be_hidden()
    field.set_input_files(files=[{"name": "letter.pdf", "mimeType": "application/pdf", "buffer": b"not a pdf at all"}])
    expect(state).to_contain_text("not a PDF")
    shoot(page, output_dir, "11-refused-in-browser")
    assert uploads == [], "nothing was sent to the API"


def test_a_flaky_network_never_buys_twice(phone, base_url, account):
    """The first checkout attempt is lost on the way back; the retry (same Idempotency-Key) gets
    the same invoice. A reload while a purchase is unanswered finishes it with the same key."""
    page = phone
    keys = []
    state = {"lost": 0}

    def lose_first_answer(route):
        keys.append(route.request.headers.get("idempotency-key"))
        response = route.fetch()  # the server does the work...
        if state["lost"] == 0:
            state["lost"] += 1
            route.abort("connectionreset")  # ...but the answer never arrives
        else:
            route.fulfill(response=response)

    sign_in(page, base_url, account)
    page.route("**/v1/checkouts", lose_first_answer)
    page.get_by_label("Quantity").fill("3")
    page.get_by_role("button", name="Buy").click()
    expect(page.get_by_role("link", name="Pay", exact=True)).to_have_count(1)
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0], keys
    expect(page.locator("#invoices > li")).to_have_count(1)

    # Every answer lost, then a reload: the interrupted purchase resumes with its key.
    keys.clear()
    page.unroute("**/v1/checkouts")

    def lose_every_answer(route):
        keys.append(route.request.headers.get("idempotency-key"))
        route.fetch()
        route.abort("connectionreset")

    page.route("**/v1/checkouts", lose_every_answer)
    page.get_by_label("Quantity").fill("1")
    page.get_by_role("button", name="Buy").click()
    page.wait_for_function("() => sessionStorage.getItem('emeterai-buy-intent') !== null")
    page.wait_for_timeout(1500)
    first_key = keys[0]
    page.unroute("**/v1/checkouts")
    page.reload()
    expect(page.locator("#invoices > li")).to_have_count(2)
    page.wait_for_function("() => sessionStorage.getItem('emeterai-buy-intent') === null")
    page.reload()
    expect(page.locator("#invoices > li")).to_have_count(2)
    assert all(k == first_key for k in keys), keys
    expect(page.get_by_text("Awaiting payment: 4", exact=True)).to_be_visible()


def test_indonesian_first_english_on_request(browser, base_url):
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="id-ID")
    page = context.new_page()
    page.goto(f"{base_url}/")
    expect(page.locator("html")).to_have_attribute("lang", "id")
    expect(page.get_by_label("Akun")).to_be_visible()
    expect(page.get_by_role("button", name="Masuk")).to_be_visible()
    page.get_by_role("link", name="English").click()
    expect(page.get_by_label("Account")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    context.close()
