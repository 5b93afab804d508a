"""schemathesis hooks of the contract run (tests/contract/run.sh).

Each hook keeps generated requests meaning what the fuzzer thinks they mean, where the meaning
depends on something no JSON Schema can say; each says why. Nothing here changes a response.
"""

import hashlib
import json
import os
import re
import time
import uuid

import requests
import schemathesis
from schemathesis.generation import GenerationMode
from schemathesis.generation.meta import TestPhase

API_URL = os.environ["EMETERAI_API_URL"]

# API.md: 1 to 128 characters of `A-Z a-z 0-9 - _ : .`.
VALID_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_:.-]{1,128}$")

# Cursors the API itself handed out (`next_cursor`), which a client may pass back.
ISSUED_CURSORS = set()

# Orders this run opened (order id -> gross amount as Midtrans writes it, "30000.00").
OPENED_ORDERS = {}

# Documents this run uploaded a PDF for; a few are enough to give the stateful phase serials.
UPLOADED_DOCUMENTS = []
MAX_UPLOADS = 6
# How long to wait for one uploaded document's stamp (a debug build on a loaded machine).
STAMP_WAIT_SECONDS = 20


def _local_server_key():
    """The local stack's Midtrans server key, read from the functions' environment file that
    scripts/run-local.sh writes (run.sh passes its path). Only ever used to sign; never printed."""
    path = os.environ["EMETERAI_CONTRACT_FUNCTIONS_ENV"]
    with open(path) as env:
        for line in env:
            name, _, value = line.rstrip("\n").partition("=")
            if name == "EMETERAI_MIDTRANS_SERVER_KEY":
                return value
    raise RuntimeError(f"EMETERAI_MIDTRANS_SERVER_KEY is not in {path}")


SERVER_KEY = _local_server_key()


def _one_pdf_page():
    """The smallest well-formed PDF this script can write: one empty A4 page, xref offsets exact."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


ONE_PAGE_PDF = _one_pdf_page()


def _is_positive(case):
    return case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.serializer("application/pdf")
def pdf_serializer(ctx, value):
    """`POST /v1/verify` takes a PDF. Whether bytes are a PDF is their content, which a schema
    (`format: binary`) cannot state: random bytes are answered 422 `not_pdf`, rightly. So a
    positive case sends a real PDF (as schemathesis itself does for images, whose servers check
    the file's signature too); a negative case sends the generated value as it is."""
    if _is_positive(ctx.case):
        return ONE_PAGE_PDF
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    # A negative case may draw a non-string body (a number, an object): sent as its JSON text,
    # still not a PDF.
    return json.dumps(value).encode("utf-8")


# RFC 8259 (section 6) lets an implementation limit the range and precision of numbers it accepts;
# the API reads JSON numbers as IEEE 754 doubles (serde_json), so a generated integer beyond
# 1.8e308 (Python's integers are unbounded) is 400 `bad_request`, rightly. So is a number written
# near the largest double: serde_json (without its slower `float_roundtrip` parsing) scales the
# leading digits by a power of ten in double arithmetic and the product can round past the largest
# double; 1.7976931348623157e308 written as its 309 integer digits is refused "number out of
# range". Every field the API reads has its own, far smaller, bounds in the schema, so positive
# bodies keep every number within 2**1023 (half the largest double: a wide margin).
LARGEST_JSON_NUMBER = 2**1023
# Integral floats up to here are exact integers; beyond it a float is left a float.
LARGEST_EXACT_INTEGER = 2**53


def _numbers_as_the_api_reads_them(value):
    """Two things a JSON Schema cannot say. Numbers are brought within the range above. And JSON
    Schema counts 196.0 as an `integer`, while the API reads counts (quantity, page) only when
    written as integers (a count has no fraction: 196.0 is 422, shared/src/domain/quantity.rs):
    integral floats are written as the integers they stand for.

    Session 19's stateful-phase failure was this hook's own doing: an integral float at the largest
    double (1.7976931348623157e308, drawn into an extra property the schema allows) was turned into
    an integer first and returned before the clamp, so it went out as 309 digits and was refused
    (reproduced with seed 705109822 in the fuzzing and stateful phases). Now the clamp comes first
    and only floats that are exact integers become integers."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and abs(value) > LARGEST_JSON_NUMBER:
        return type(value)(LARGEST_JSON_NUMBER if value > 0 else -LARGEST_JSON_NUMBER)
    if isinstance(value, float) and value.is_integer() and abs(value) <= LARGEST_EXACT_INTEGER:
        return int(value)
    if isinstance(value, dict):
        return {k: _numbers_as_the_api_reads_them(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_the_api_reads_them(v) for v in value]
    return value


def _sign_notification(body):
    """The webhook believes a notification only with Midtrans' signature over order_id,
    status_code and gross_amount with the server key (API.md); a generated `signature_key` matches
    the pattern but never the key, so every drawn notification is rightly 401 `bad_signature` and
    the webhook's logic is never reached. A positive notification is what Midtrans would send:
    signed with the local stack's key. Half of them (chosen by a hash of the body, so a seed
    replays the same ones) name an order this run opened, with that invoice's amount (a drawn
    amount for a real order is rightly 422 `amount_mismatch`, which a schema cannot say), so the
    status, fraud and duplicate handling runs on real invoices; the rest keep their drawn order id
    and are answered 404 `not_found` (API.md: unknown order)."""
    fields = ("order_id", "status_code", "gross_amount")
    if not all(isinstance(body.get(name), str) for name in fields):
        return
    if OPENED_ORDERS:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).digest()
        if digest[0] % 2 == 0:
            orders = sorted(OPENED_ORDERS)
            body["order_id"] = orders[digest[1] % len(orders)]
            body["gross_amount"] = OPENED_ORDERS[body["order_id"]]
    signed = body["order_id"] + body["status_code"] + body["gross_amount"] + SERVER_KEY
    body["signature_key"] = hashlib.sha512(signed.encode("utf-8")).hexdigest()


@schemathesis.hook
def before_call(context, case, kwargs):
    if _is_positive(case) and isinstance(case.body, (dict, list)):
        case.body = _numbers_as_the_api_reads_them(case.body)
    if case.operation.label == "POST /v1/webhooks/midtrans" and _is_positive(case) and isinstance(case.body, dict):
        _sign_notification(case.body)
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    # API.md: the same key with another body is 422 `idempotency_key_reused`; a client makes a
    # new key per intent. Generated keys repeat (the pattern's examples, shrinking), so a valid
    # key is made unique here; an invalid one is left invalid (the negative cases need it).
    if isinstance(key, str) and VALID_IDEMPOTENCY_KEY.match(key):
        headers["Idempotency-Key"] = "st-" + uuid.uuid4().hex
    # A cursor is valid only as the API issued it (base64url of the listing's last key, bound to
    # the caller's account; API.md calls it opaque): a generated string is a cursor the API never
    # gave and is 400 `bad_request`, rightly. Positive cases keep only cursors the API issued.
    if case.operation.label == "GET /v1/invoices" and _is_positive(case) and case.query:
        cursor = case.query.get("cursor")
        if cursor not in (None, "") and cursor not in ISSUED_CURSORS:
            del case.query["cursor"]


@schemathesis.hook
def after_call(context, case, response):
    if not 200 <= response.status_code < 300:
        return
    label = case.operation.label
    if label == "GET /v1/invoices":
        try:
            cursor = response.json().get("next_cursor")
        except ValueError:
            return
        if cursor:
            ISSUED_CURSORS.add(cursor)
    elif label == "POST /v1/checkouts":
        # Pay two invoices of three the run opens, through the local gateway's payment simulator (a
        # correctly signed settlement notification, as Midtrans sends): refunds and documents
        # then have paid units to act on, so the stateful phase reaches their 2xx answers. The
        # third stays PENDING, so asking for its payment again (retryPayment, which answers 409 for
        # a paid invoice) reaches the gateway. Chosen by a hash of the order id: a seed replays it.
        try:
            invoice = response.json()
        except ValueError:
            return
        order_id, amount = invoice.get("order_id"), invoice.get("amount")
        if not isinstance(order_id, str):
            return
        if isinstance(amount, int):
            OPENED_ORDERS[order_id] = f"{amount}.00"
        if hashlib.sha256(order_id.encode()).digest()[0] % 3 != 0:
            requests.post(f"{API_URL}/dev/pay/{order_id}", json={}, timeout=30)
    elif label == "POST /v1/documents" and case.meta is not None and case.meta.phase.name == TestPhase.STATEFUL:
        _upload_and_wait(response)


def _upload_and_wait(response):
    """Without an upload a document stays AWAITING_UPLOAD and has no serial, so the link from
    getDocument to verifySerial never carries one and verification is only fuzzed to 404. For the
    first few documents the run creates, the client's next step is taken: the one-page PDF is
    uploaded to the presigned URL the answer gave, as a browser would, and the stamp awaited (the
    S3 event runs the stamp function), so a later getDocument sees STAMPED (or REJECTED, e.g. a
    drawn placement off the page) and its serial leads to GET /v1/verify/{serial}. Only in the
    stateful phase: links are followed there, and earlier phases would spend the few uploads."""
    if len(UPLOADED_DOCUMENTS) >= MAX_UPLOADS:
        return
    try:
        created = response.json()
        document_id, upload = created["document_id"], created["upload"]
    except (ValueError, KeyError, TypeError):
        return
    if not isinstance(upload, dict) or upload.get("method") != "PUT":
        return
    UPLOADED_DOCUMENTS.append(document_id)
    put = requests.put(upload["url"], data=ONE_PAGE_PDF, headers=upload.get("headers") or {}, timeout=30)
    if not put.ok:
        return
    caller = {"Authorization": response.request.headers.get("Authorization", "")}
    deadline = time.monotonic() + STAMP_WAIT_SECONDS
    while time.monotonic() < deadline:
        status = requests.get(f"{API_URL}/v1/documents/{document_id}", headers=caller, timeout=30)
        if status.ok and status.json().get("status") not in ("AWAITING_UPLOAD", "PROCESSING"):
            return
        time.sleep(0.5)
