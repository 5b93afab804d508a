"""schemathesis hooks of the contract run (tests/contract/run.sh).

Each hook keeps generated requests meaning what the fuzzer thinks they mean, where the meaning
depends on something no JSON Schema can say; each says why. Nothing here changes a response.
"""

import json
import os
import re
import uuid

import requests
import schemathesis
from schemathesis.generation import GenerationMode

API_URL = os.environ["EMETERAI_API_URL"]

# API.md: 1 to 128 characters of `A-Z a-z 0-9 - _ : .`.
VALID_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_:.-]{1,128}$")

# Cursors the API itself handed out (`next_cursor`), which a client may pass back.
ISSUED_CURSORS = set()


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


# RFC 8259 (section 6) lets an implementation limit the range of numbers it accepts; the API reads
# JSON numbers as IEEE 754 doubles (serde_json), so a generated integer beyond 1.8e308 (Python's
# integers are unbounded) is 400 `bad_request`, rightly. Positive bodies keep integers within it;
# every field the API reads has its own, far smaller, bounds in the schema.
LARGEST_JSON_NUMBER = 2**1023


def _integral_floats_as_integers(value):
    """Integers beyond a double's range are brought within it (above). And: JSON Schema counts 196.0 as an `integer`; the API reads counts (quantity, page) only when
    written as integers (a count has no fraction: 196.0 is 422, shared/src/domain/quantity.rs),
    which `type: integer` cannot say. Positive bodies write integral floats as the integers they stand for."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > LARGEST_JSON_NUMBER:
        return LARGEST_JSON_NUMBER if value > 0 else -LARGEST_JSON_NUMBER
    if isinstance(value, dict):
        return {k: _integral_floats_as_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_integers(v) for v in value]
    return value


@schemathesis.hook
def before_call(context, case, kwargs):
    if _is_positive(case) and isinstance(case.body, (dict, list)):
        case.body = _integral_floats_as_integers(case.body)
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
        # Pay every invoice the run opens, through the local gateway's payment simulator (a
        # correctly signed settlement notification, as Midtrans sends): refunds and documents
        # then have paid units to act on, so the stateful phase reaches their 2xx answers.
        try:
            order_id = response.json().get("order_id")
        except ValueError:
            return
        if order_id:
            requests.post(f"{API_URL}/dev/pay/{order_id}", json={}, timeout=30)
