"""The deadline drill (issue 11): applicants arriving along the last days before a deadline.

Run through `make drill` (drill/drill.py starts Locust with this file, injects the faults, settles
and audits). Locust alone works too:

    .local/venv/bin/locust -f drill/locustfile.py --headless --host http://127.0.0.1:3000

One Locust user is one applicant at a time: each iteration of its task is a whole journey on a new
account (checkout, pay, upload, poll, download, verify, sometimes a refund). A second user class
runs the scheduled sweep, sometimes two at once. Everything the drill needs afterwards (which
orders were paid, which invoices exist) is appended as JSON lines to DRILL_JOURNAL.

Settings (environment), all optional:
  DRILL_DURATION_S      length of the whole shape in seconds (default 60)
  DRILL_BASELINE_USERS  concurrent applicants at baseline (default 2); the evening peak is
                        DRILL_PEAK_FACTOR (10) times that, the final-hours spike DRILL_SPIKE_FACTOR (15)
  DRILL_LOCAL           1 (default) when the /dev routes exist (local stack): payments go through
                        the simulator and sweeps are triggered; 0 against a deployment
  DRILL_TOKEN_FILE      against a deployment: bearer tokens, one a line, one per applicant account
                        (the local stack mints its own tokens with EMETERAI_LOCAL_JWT_SECRET)
  DRILL_JOURNAL         where the journal goes (default .local/drill/journal.jsonl)
  DRILL_SEED            seed of the random choices (default: time)
  DRILL_CONSTANT_USERS  when > 0, this many applicants for the whole duration instead of the
                        deadline's shape (throughput measurements)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import random
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import gevent
from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.exception import StopUser

DURATION_S = float(os.environ.get("DRILL_DURATION_S", "60"))
BASELINE = max(1, int(os.environ.get("DRILL_BASELINE_USERS", "2")))
PEAK_FACTOR = float(os.environ.get("DRILL_PEAK_FACTOR", "10"))
SPIKE_FACTOR = float(os.environ.get("DRILL_SPIKE_FACTOR", "15"))
CONSTANT_USERS = max(0, int(os.environ.get("DRILL_CONSTANT_USERS", "0")))
LOCAL = os.environ.get("DRILL_LOCAL", "1") == "1"
JOURNAL = os.environ.get("DRILL_JOURNAL", ".local/drill/journal.jsonl")
RUN_ID = os.environ.get("DRILL_RUN_ID", uuid.uuid4().hex[:8])
JWT_SECRET = os.environ.get("EMETERAI_LOCAL_JWT_SECRET", "local-dev-secret")
MAX_BYTES = 800_000
# A step waits this long for an answer before the client gives up and retries (checkout) or
# records a timeout; the local gateway's own limit for HTTP routes is longer.
REQUEST_TIMEOUT_S = float(os.environ.get("DRILL_REQUEST_TIMEOUT_S", "10"))
STAMP_WAIT_S = float(os.environ.get("DRILL_STAMP_WAIT_S", "90"))

rng = random.Random(int(os.environ.get("DRILL_SEED", str(time.time_ns()))))
_journal_lock = threading.Lock()
_account_counter = itertools.count()
_tokens: list[str] = []
if os.environ.get("DRILL_TOKEN_FILE"):
    with open(os.environ["DRILL_TOKEN_FILE"], encoding="utf-8") as f:
        _tokens = [line.strip() for line in f if line.strip()]


def journal(entry_kind: str, **fields) -> None:
    """One line per fact the settle/audit phase needs; appended, flushed at once."""
    line = json.dumps({"kind": entry_kind, "at": time.time(), **fields}, separators=(",", ":"))
    with _journal_lock, open(JOURNAL, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def local_token(sub: str) -> str:
    """An HS256 token as the local gateway expects it (API.md, Conventions)."""
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = _b64(json.dumps({"sub": sub, "iss": "emeterai-local", "aud": "emeterai", "iat": now,
                              "exp": now + 6 * 3600}).encode())
    signature = hmac.new(JWT_SECRET.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64(signature)}"


def a4_pdf(note: str) -> bytes:
    """A one-page A4 PDF with a line and `note` in a comment (so every letter hashes differently)."""
    content = "0.5 w 72 720 m 300 720 l S"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.28 841.89] /Contents 4 0 R /Resources << >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
    ]
    pdf = bytearray(f"%PDF-1.7\n% {note}\n".encode())
    offsets = []
    for i, obj in enumerate(objects):
        offsets.append(len(pdf))
        pdf += f"{i + 1} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(pdf)
    pdf += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        pdf += f"{off:010} 00000 n \n".encode()
    pdf += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(pdf)


def oversized_pdf(note: str) -> bytes:
    """A valid-looking PDF just over the 800,000-byte limit (padding in a comment)."""
    pdf = a4_pdf(note)
    return pdf[:9] + b"%" + b"x" * (MAX_BYTES + 1 - len(pdf)) + b"\n" + pdf[9:]


# Refusals API.md promises for what the drill sends on purpose; counted apart from errors.
EXPECTED_REJECTIONS = {"not_pdf", "corrupt", "too_large"}


def record(name: str, started: float, *, exception: Exception | None = None, length: int = 0) -> None:
    """A step that is not one HTTP request (the stamp wait, the whole journey) as a Locust entry."""
    events.request.fire(request_type="STEP", name=name, response_time=(time.perf_counter() - started) * 1000,
                        response_length=length, exception=exception, context={})


class DrillError(Exception):
    """An unexpected outcome; its text is the error kind in Locust's failure table."""


class Applicant(FastHttpUser):
    """One applicant journey per task run, each on a fresh account.

    FastHttpUser (geventhttpclient) rather than HttpUser (requests): on this 2-core machine the
    load generator shares the CPU with the stack it measures, and with requests Locust spent twice
    the CPU per journey (0.0137 s against 0.0065 s, 32 users). Its timeout is per user class, not
    per request.
    """

    wait_time = between(0.2, 1.0)
    weight = 20
    network_timeout = REQUEST_TIMEOUT_S
    connection_timeout = REQUEST_TIMEOUT_S

    def headers(self, **extra) -> dict:
        return {"Authorization": f"Bearer {self.token}", **extra}

    @task
    def journey(self) -> None:
        started = time.perf_counter()
        n = next(_account_counter)
        if _tokens:
            self.account = f"token-{n % len(_tokens)}"
            self.token = _tokens[n % len(_tokens)]
        else:
            self.account = f"drill-{RUN_ID}-{os.getpid()}-{n}"
            self.token = local_token(self.account)
        try:
            self.run_journey()
        except DrillError as e:
            record("journey", started, exception=e)
            return
        except Exception as e:  # noqa: BLE001 - a bug of the drill itself is an error kind too
            record("journey", started, exception=DrillError(f"drill bug: {e!r}"))
            return
        record("journey", started)

    # -- steps ---------------------------------------------------------------------------------

    def checkout(self, quantity: int) -> dict:
        """POST /v1/checkouts; on a timeout, a 5xx or 409 in-progress, the same key again."""
        key = f"drill-{uuid.uuid4().hex}"
        body = {"quantity": quantity}
        for attempt in range(5):
            name = "checkout" if attempt == 0 else "checkout (retry, same key)"
            try:
                with self.client.post("/v1/checkouts", json=body, name=name, catch_response=True,
                                      headers=self.headers(**{"Idempotency-Key": key})) as r:
                    if r.status_code == 201:
                        invoice = r.json()
                        journal("checkout", account=self.account, key=key, invoice_id=invoice["invoice_id"],
                                order_id=invoice["order_id"], quantity=quantity,
                                replayed=r.headers.get("Idempotent-Replayed") == "true",
                                payment=invoice.get("payment") is not None)
                        r.success()
                        return invoice
                    if r.status_code == 409 or r.status_code >= 500 or r.status_code == 0:
                        # 0: the client gave up (timeout) or the connection broke: retry, same key.
                        r.failure(f"checkout {r.status_code or 'timeout'}: retried with the same key")
                    else:
                        r.failure(f"checkout {r.status_code} {problem_code(r)}")
                        raise DrillError(f"checkout refused: {r.status_code} {problem_code(r)}")
            except DrillError:
                raise
            gevent.sleep(0.5 * 2**attempt)
        raise DrillError("checkout: gave up after 5 attempts")

    def ask_for_payment_link(self, invoice: dict) -> dict:
        """The gateway was unreachable at checkout: POST /v1/invoices/{id}/payment asks again."""
        for attempt in range(4):
            with self.client.post(f"/v1/invoices/{invoice['invoice_id']}/payment", name="payment link again",
                                  headers=self.headers(), catch_response=True) as r:
                if r.status_code in (200, 201) and r.json().get("payment"):
                    r.success()
                    return r.json()
                r.failure(f"payment link {r.status_code}")
            gevent.sleep(1 + attempt)
        return invoice

    def pay(self, order_id: str) -> int:
        """Settles on the simulator; deliveries 0 (lost) to 3 (duplicated), sometimes a `pending`
        notification first (Midtrans' own order). Returns the settlement deliveries asked for."""
        deliveries = rng.choices([0, 1, 2, 3], weights=[10, 60, 20, 10])[0]
        if rng.random() < 0.15:
            with self.client.post(f"/dev/pay/{order_id}", json={"transaction_status": "pending", "deliveries": 1},
                                  name="pay (pending first)", catch_response=True) as r:
                if r.status_code != 200:
                    r.failure(f"pay pending {r.status_code}")
        for attempt in range(3):
            with self.client.post(f"/dev/pay/{order_id}", json={"transaction_status": "settlement",
                                                                 "deliveries": deliveries},
                                  name="pay", catch_response=True) as r:
                if r.status_code == 200:
                    outcome = r.json()
                    delivered = [d.get("status") for d in outcome.get("deliveries", [])]
                    journal("paid", account=self.account, order_id=order_id, deliveries=deliveries,
                            answers=delivered)
                    # A 5xx to a notification is the webhook asking Midtrans to retry; the drill
                    # leaves that to the sweep's reconciliation, as a lost notification.
                    r.success()
                    return deliveries if any(s == 200 for s in delivered) else 0
                r.failure(f"pay {r.status_code}")
            gevent.sleep(1 + attempt)
        raise DrillError("pay: the simulator did not settle")

    def wait_for_credit(self, quantity: int) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with self.client.get("/v1/quota", headers=self.headers(), name="quota", catch_response=True) as r:
                if r.status_code == 200:
                    r.success()
                    if r.json().get("available", 0) >= quantity:
                        return True
                else:
                    r.failure(f"quota {r.status_code}")
            gevent.sleep(0.5)
        return False

    def upload_letter(self, index: int) -> None:
        kind = rng.choices(["valid", "invalid", "oversized", "reupload"], weights=[80, 8, 4, 8])[0]
        with self.client.post("/v1/documents", headers=self.headers(), name="create document", catch_response=True,
                              json={"file_name": f"surat-{index}.pdf",
                                    "placement": {"page": 1, "x_mm": 120, "y_mm": 220}}) as r:
            if r.status_code != 201:
                r.failure(f"create document {r.status_code} {problem_code(r)}")
                raise DrillError(f"create document {r.status_code}")
            document = r.json()
        document_id = document["document_id"]
        journal("document", account=self.account, document_id=document_id, letter=kind)
        if kind == "invalid":
            body = b"This is not a PDF, it is a letter typed into the wrong box.\n" * 20
        elif kind == "oversized":
            body = oversized_pdf(document_id)
        else:
            body = a4_pdf(document_id)
        upload = document["upload"]
        uploaded_at = time.perf_counter()
        self.put(upload, body)
        if kind == "reupload":
            # The same bytes again: either a second S3 event (one unit, one serial all the same) or,
            # with single-use upload URLs (If-None-Match: *), a 412 from the store.
            self.put(upload, body, again=True)
        self.wait_for_stamp(document_id, kind, uploaded_at)

    def put(self, upload: dict, body: bytes, again: bool = False) -> None:
        for attempt in range(5):
            try:
                r = self.client.request(upload.get("method", "PUT"), upload["url"], data=body, name="upload",
                                        headers=upload.get("headers", {}), catch_response=True)
                with r:
                    if 200 <= r.status_code < 300:
                        r.success()
                        return
                    if (again or attempt > 0) and r.status_code == 412:
                        r.success()
                        events.request.fire(request_type="EXPECTED", name="re-upload refused 412", response_time=0,
                                            response_length=0, exception=None, context={})
                        return
                    if r.status_code in (400, 403, 413) and len(body) > MAX_BYTES:
                        r.success()  # the store itself refusing the oversized file is a fine answer
                        return
                    r.failure(f"upload {r.status_code or 'connection failed'}")
            except Exception as e:  # noqa: BLE001 - the S3 server restarting drops connections
                record("upload", time.perf_counter(), exception=e)
            gevent.sleep(1 + attempt)
        raise DrillError("upload: gave up after 5 attempts")

    def wait_for_stamp(self, document_id: str, kind: str, uploaded_at: float) -> None:
        deadline = time.monotonic() + STAMP_WAIT_S
        while True:
            with self.client.get(f"/v1/documents/{document_id}", headers=self.headers(), name="poll document",
                                 catch_response=True) as r:
                if r.status_code != 200:
                    r.failure(f"poll {r.status_code}")
                    doc = {}
                else:
                    r.success()
                    doc = r.json()
            status = doc.get("status")
            if status in ("STAMPED", "REJECTED"):
                break
            if time.monotonic() > deadline:
                if kind == "oversized" and status == "AWAITING_UPLOAD":
                    return  # the store refused the upload: nothing to stamp, nothing consumed
                record("stamp (upload to STAMPED)", uploaded_at,
                       exception=DrillError(f"stamp: still {status} after {STAMP_WAIT_S:.0f} s"))
                raise DrillError(f"stamp: still {status}")
            gevent.sleep(0.3)
        if status == "REJECTED":
            code = (doc.get("rejection") or {}).get("code")
            if kind in ("invalid", "oversized") and code in EXPECTED_REJECTIONS:
                events.request.fire(request_type="EXPECTED", name=f"rejected {code}", response_time=0,
                                    response_length=0, exception=None, context={})
                return
            record("stamp (upload to STAMPED)", uploaded_at, exception=DrillError(f"rejected {code} ({kind})"))
            raise DrillError(f"stamp: rejected {code}")
        if kind in ("invalid", "oversized"):
            record("stamp (upload to STAMPED)", uploaded_at, exception=DrillError(f"{kind} letter was stamped"))
            raise DrillError(f"{kind} letter was stamped")
        record("stamp (upload to STAMPED)", uploaded_at)
        self.download_and_verify(doc)

    def download_and_verify(self, doc: dict) -> None:
        with self.client.get(doc["download_url"], name="download", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"download {r.status_code}")
                raise DrillError("download failed")
            stamped = r.content
            if hashlib.sha256(stamped).hexdigest() != doc.get("sha256"):
                r.failure("download: SHA-256 differs from the document's")
                raise DrillError("download: sha256 differs")
            r.success()
        with self.client.get(f"/v1/verify/{doc['serial']}", name="verify serial", catch_response=True) as r:
            if r.status_code != 200 or r.json().get("status") != "STAMPED":
                r.failure(f"verify serial {r.status_code}")
                raise DrillError("verify serial failed")
            r.success()
        if rng.random() < 0.25:
            with self.client.post("/v1/verify", data=stamped, headers={"Content-Type": "application/pdf"},
                                  name="verify file", catch_response=True) as r:
                stamps = r.json().get("stamps", []) if r.status_code == 200 else []
                if not stamps or not all(s.get("signature_valid") and s.get("registered") for s in stamps):
                    r.failure(f"verify file {r.status_code}")
                    raise DrillError("verify file failed")
                r.success()

    def refund(self, invoice_id: str) -> None:
        key = f"drill-refund-{uuid.uuid4().hex}"
        for attempt in range(2):  # the second is a client retry: never a second refund
            with self.client.post(f"/v1/invoices/{invoice_id}/refund", headers=self.headers(**{"Idempotency-Key": key}),
                                  name="refund", catch_response=True) as r:
                if r.status_code in (200, 202):
                    r.success()
                    journal("refund", account=self.account, invoice_id=invoice_id, refund=r.json())
                elif r.status_code == 409 and problem_code(r) == "nothing_to_refund":
                    r.success()
                    events.request.fire(request_type="EXPECTED", name="refund nothing_to_refund", response_time=0,
                                        response_length=0, exception=None, context={})
                else:
                    r.failure(f"refund {r.status_code} {problem_code(r)}")

    # -- the journey ---------------------------------------------------------------------------

    def run_journey(self) -> None:
        quantity = rng.randint(1, 3)
        invoice = self.checkout(quantity)
        if not LOCAL:
            # A deployment has no simulator to pay on: the journey ends at the payment link, and
            # the tokens' accounts must hold quota for the rest (see drill/README.md).
            if not invoice.get("payment"):
                raise DrillError("checkout: no payment link")
            paid = True
        else:
            if invoice.get("payment") is None:
                invoice = self.ask_for_payment_link(invoice)
            if rng.random() < 0.05:
                journal("abandoned", account=self.account, order_id=invoice["order_id"])
                return  # never paid: the sweep expires it after 24 h
            delivered = self.pay(invoice["order_id"])
            if delivered == 0:
                # The notification was lost: the sweep's reconciliation credits it later. The
                # applicant comes back another day; this journey ends here.
                return
            paid = self.wait_for_credit(quantity)
            if not paid:
                raise DrillError("credit: not visible in the quota 20 s after a delivered notification")
        letters = rng.randint(1, quantity)
        for index in range(letters):
            self.upload_letter(index)
        if rng.random() < 0.15:
            self.refund(invoice["invoice_id"])


def problem_code(response) -> str:
    try:
        return str(response.json().get("code"))
    except Exception:  # noqa: BLE001 - a non-JSON answer (timeouts, proxies)
        return "-"


class Sweeper(FastHttpUser):
    """The scheduled sweep, every few seconds instead of five minutes; a few runs overlap.

    Its "now" is 11 minutes ahead, so notifications lost during the run are reconciled while the
    drill goes on (EMETERAI_RECONCILE_AFTER_MINUTES is 10) and nothing expires yet (24 h).
    """

    fixed_count = 1
    wait_time = constant(5)
    network_timeout = 120.0

    def on_start(self) -> None:
        if not LOCAL:
            raise StopUser()

    @task
    def sweep(self) -> None:
        now = (datetime.now(timezone.utc) + timedelta(minutes=11)).isoformat()
        runs = 2 if rng.random() < 0.25 else 1
        greenlets = [gevent.spawn(self._sweep_once, now, "sweep" if i == 0 else "sweep (overlapping)")
                     for i in range(runs)]
        gevent.joinall(greenlets)

    def _sweep_once(self, now: str, name: str) -> None:
        with self.client.post("/dev/sweep", json={"now": now}, name=name, catch_response=True) as r:
            if r.status_code == 200:
                r.success()
            else:
                r.failure(f"sweep {r.status_code} {problem_code(r)}")


class DeadlineShape(LoadTestShape):
    """The last days before a deadline, compressed into DRILL_DURATION_S: a baseline, the evening
    peak at DRILL_PEAK_FACTOR times baseline, a quiet night, then the final-hours spike."""

    # (fraction of the run at which the stage ends, users as a multiple of baseline, spawn rate per s)
    stages = [
        (0.20, 1, 1),
        (0.45, PEAK_FACTOR, 5),
        (0.60, 1, 10),
        (0.90, SPIKE_FACTOR, 20),
        (1.00, 1, 20),
    ]

    def tick(self):
        elapsed = self.get_run_time()
        if elapsed >= DURATION_S:
            return None
        if CONSTANT_USERS:
            return CONSTANT_USERS + (1 if LOCAL else 0), max(5, CONSTANT_USERS / 2)
        for end, multiple, rate in self.stages:
            if elapsed < end * DURATION_S:
                # +1: the Sweeper (fixed_count) counts among the users.
                users = max(1, round(BASELINE * multiple)) + (1 if LOCAL else 0)
                return users, rate * max(1, BASELINE / 2)
        return None
