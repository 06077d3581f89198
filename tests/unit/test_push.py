"""Push targets without a network: signing and its check, Retry-After, what each status means,
the request body and headers, and what `app.http_target` registers."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

import errands
from errands.current import RunningJob, enter, leave
from errands.push import InvalidSignature, PushRejected, PushRetry, retry_after, sign
from errands.push.clients import PushClients
from errands.push.responses import BODY_LIMIT, RETRY_AFTER_CAP, settle
from errands.push.target import HttpTarget, encode_body
from errands.testing import FakeClock

AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
BODY = b'{"order":42}'
URL = "https://hooks.example/orders"
ROOT = Path(__file__).resolve().parents[2]


# -- signing ----------------------------------------------------------------------------------


def test_a_signature_is_an_hmac_sha256_of_the_time_and_the_body() -> None:
    stamp = int(AT.timestamp())
    digest = hmac.new(b"s3cret", f"{stamp}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", BODY, at=AT) == f"t={stamp},v1={digest}"


def test_a_fresh_signature_of_the_same_body_verifies() -> None:
    header = sign("s3cret", BODY, at=AT)
    errands.verify_signature("s3cret", BODY, header, now=AT + timedelta(minutes=4))
    errands.verify_signature(b"s3cret", BODY, header, now=AT - timedelta(minutes=4))


@pytest.mark.parametrize(
    ("secret", "body"),
    [("s3cret", b'{"order":43}'), ("other", BODY), ("s3cret", BODY + b" ")],
    ids=["altered body", "other secret", "one more byte"],
)
def test_a_signature_over_another_body_or_secret_is_a_mismatch(secret: str, body: bytes) -> None:
    header = sign(secret, body, at=AT)
    with pytest.raises(InvalidSignature) as raised:
        errands.verify_signature("s3cret", BODY, header, now=AT)
    assert raised.value.reason == "mismatch"


@pytest.mark.parametrize("off", [timedelta(minutes=6), -timedelta(minutes=6)])
def test_a_signature_outside_the_tolerance_is_stale(off: timedelta) -> None:
    header = sign("s3cret", BODY, at=AT)
    with pytest.raises(InvalidSignature, match="stale") as raised:
        errands.verify_signature("s3cret", BODY, header, now=AT + off)
    assert raised.value.reason == "stale"
    errands.verify_signature("s3cret", BODY, header, now=AT + off, tolerance=timedelta(minutes=7))


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "malformed"),
        ("t=1893553445", "malformed"),
        ("t=soon,v1=abc", "malformed"),
    ],
)
def test_a_header_without_a_time_and_a_digest_is_refused(header: str | None, reason: str) -> None:
    with pytest.raises(InvalidSignature) as raised:
        errands.verify_signature("s3cret", BODY, header, now=AT)
    assert raised.value.reason == reason


def test_any_of_several_secrets_verifies_while_one_is_rotated() -> None:
    header = sign("new", BODY, at=AT)
    errands.verify_signature(["old", "new"], BODY, header, now=AT)
    with pytest.raises(InvalidSignature):
        errands.verify_signature(["old", "older"], BODY, header, now=AT)


def test_a_header_may_carry_other_schemes_beside_v1() -> None:
    header = sign("s3cret", BODY, at=AT) + ",v0=deadbeef"
    errands.verify_signature("s3cret", BODY, header, now=AT)


def test_an_empty_secret_signs_nothing() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign("", BODY, at=AT)


# -- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("120", timedelta(seconds=120)),
        (" 0 ", timedelta(0)),
        (format_datetime(AT + timedelta(seconds=90), usegmt=True), timedelta(seconds=90)),
        ("Wed, 02 Jan 2030 03:05:35 -0000", timedelta(seconds=90)),
        (format_datetime(AT - timedelta(hours=1), usegmt=True), timedelta(0)),
        ("99999999999999999999", RETRY_AFTER_CAP),
        (None, None),
        ("soon", None),
        ("-1", None),
        ("1.5", None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date(value: str | None, wait: timedelta) -> None:
    assert retry_after(value, now=AT) == wait


# -- statuses ---------------------------------------------------------------------------------


def answer(status: int, body: bytes = b"", **headers: str) -> dict[str, object]:
    return settle("POST", URL, status, headers, body, now=AT)


def test_a_2xx_is_the_result_a_json_body_decoded() -> None:
    assert answer(200, b'{"ok":true}', **{"content-type": "application/json"}) == {
        "status": 200,
        "body": {"ok": True},
        "truncated": False,
    }
    assert answer(201, b"made", **{"content-type": "text/plain"})["body"] == "made"
    assert answer(204)["body"] is None
    assert answer(200, b"{not json", **{"content-type": "application/json"})["body"] == "{not json"


def test_a_body_over_the_limit_is_cut_and_says_so() -> None:
    big = answer(200, b"x" * (BODY_LIMIT + 1), **{"content-type": "application/json"})
    assert big == {"status": 200, "body": "x" * BODY_LIMIT, "truncated": True}


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_a_busy_or_failing_target_is_retried_after_its_retry_after(status: int) -> None:
    with pytest.raises(PushRetry) as raised:
        answer(status, b"later", **{"retry-after": "7"})
    assert isinstance(raised.value, errands.Retry)
    assert (raised.value.status, raised.value.in_) == (status, timedelta(seconds=7))
    assert str(raised.value) == f"POST {URL} answered {status}, Retry-After 7s: later"


def test_a_retry_without_retry_after_leaves_the_wait_to_the_backoff() -> None:
    with pytest.raises(PushRetry) as raised:
        answer(500)
    assert raised.value.in_ is None
    assert str(raised.value) == f"POST {URL} answered 500: (empty body)"


@pytest.mark.parametrize("status", [301, 400, 401, 404, 410, 422])
def test_any_other_status_is_rejected(status: int) -> None:
    with pytest.raises(PushRejected) as raised:
        answer(status, b"no" * 1000, **{"retry-after": "7"})
    assert raised.value.status == status
    assert len(raised.value.detail) == 300  # an excerpt, not the whole body


# -- requests ---------------------------------------------------------------------------------


def target(**options: object) -> HttpTarget:
    return HttpTarget("hooks.orders", URL, **options)  # type: ignore[arg-type]


def test_a_payload_is_sent_as_json_bytes_as_they_are_and_none_as_no_body() -> None:
    assert encode_body(target(), None) == (b"", None)
    assert encode_body(target(), b"\x00raw") == (b"\x00raw", "application/octet-stream")
    key = uuid.UUID(int=1)
    body, kind = encode_body(
        target(), {"at": AT, "id": key, "price": Decimal("9.50"), "wait": timedelta(seconds=3)}
    )
    assert kind == "application/json"
    assert body == (
        b'{"at": "2030-01-02T03:04:05+00:00", "id": "00000000-0000-0000-0000-000000000001", '
        b'"price": "9.50", "wait": 3.0}'
    )


def test_a_payload_json_cannot_carry_is_rejected() -> None:
    with pytest.raises(PushRejected, match="could not be sent"):
        encode_body(target(), {"x": float("nan")})


def test_headers_go_target_then_job_then_errands() -> None:
    job = RunningJob(
        errands.job.new_job_id(),
        "hooks.orders",
        "default",
        3,
        {"X-Tenant": "acme", "errands-task": "forged"},
    )
    made = target(headers={"x-tenant": "default", "content-type": "application/cloudevents+json"})
    headers = made.request_headers(BODY, "application/json", job, FakeClock(AT))
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert headers["X-Tenant"] == "acme"
    assert (headers["Errands-Task"], headers["Errands-Attempt"]) == ("hooks.orders", "3")
    assert headers["Errands-Job-Id"] == str(job.id)
    assert len(headers.get_list("x-tenant")) == len(headers.get_list("errands-task")) == 1
    assert "Errands-Signature" not in headers  # no secret anywhere: unsigned


async def test_a_call_header_http_cannot_carry_is_rejected_before_sending() -> None:
    job = RunningJob(errands.job.new_job_id(), "hooks.orders", "default", 1, {"X-Bad": "a\nb"})
    token = enter(job)
    try:
        with pytest.raises(PushRejected, match="a header HTTP cannot carry"):
            await target().push(PushClients(), {"n": 1}, FakeClock(AT))
    finally:
        leave(token)


def test_a_target_without_a_secret_signs_with_the_environment_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ERRANDS_PUSH_SECRET", "from-env")
    headers = target().request_headers(BODY, "application/json", None, FakeClock(AT))
    errands.verify_signature("from-env", BODY, headers["Errands-Signature"], now=AT)
    assert "Errands-Job-Id" not in headers  # called inline: no job


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"url": "ftp://hooks.example/"}, ValueError),
        ({"url": "/orders"}, ValueError),
        ({"method": "post"}, ValueError),
        ({"timeout": 30}, TypeError),
        ({"timeout": timedelta(0)}, ValueError),
        ({"secret": ""}, ValueError),
        ({"headers": {"X-Bad": "line\nbreak"}}, ValueError),
        ({"headers": {"X Bad": "space in the name"}}, ValueError),
        ({"headers": {"X-Name": "Zoë"}}, ValueError),
    ],
)
def test_a_bad_target_is_refused_when_declared(
    app: errands.App, options: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        app.http_target("hooks.bad", **{"url": URL, **options})  # type: ignore[arg-type]
    assert "hooks.bad" not in app.registry


# -- declaring --------------------------------------------------------------------------------


def test_a_target_is_a_registered_async_task_with_its_limits(app: errands.App) -> None:
    hook = app.http_target("hooks.orders", url=URL, queue="hooks", max_attempts=7, rate_limit="5/s")
    assert app.get_task("hooks.orders") is hook
    assert (hook.defaults.queue, hook.defaults.pool, hook.defaults.max_attempts) == (
        "hooks",
        "async",
        7,
    )
    assert hook.defaults.limits == errands.task.Limits.declare("5/s", None, None)
    assert not hook.defaults.retry.retries(PushRejected("POST", URL, 404, ""))
    spec = hook.call({"order": 42}).spec()
    assert [limit.key for limit in spec.limits] == ["task:hooks.orders"]


def test_a_target_name_is_taken_once(app: errands.App) -> None:
    app.http_target("hooks.orders", url=URL)
    with pytest.raises(ValueError, match="already registered"):
        app.http_target("hooks.orders", url=URL)


def test_importing_errands_does_not_import_httpx() -> None:
    probe = "import sys, errands, errands.push; print('httpx' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


# -- the examples of docs/http.md -------------------------------------------------------------


def docs_example(first_line: str) -> str:
    text = (ROOT / "docs" / "http.md").read_text()
    found = re.search(rf"```python\n({re.escape(first_line)}\n.*?)```", text, re.S)
    assert found, f"docs/http.md lost its example {first_line!r}"
    return found.group(1)


def test_the_docs_target_example_enqueues(tmp_path: Path) -> None:
    (tmp_path / "hooks.py").write_text(docs_example("# hooks.py"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRANDS_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    done = subprocess.run(
        [sys.executable, "hooks.py"], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    app = errands.App(f"sqlite:///{tmp_path / 'errands.db'}")
    try:
        stored = app.portal.call(
            app.call_broker, lambda broker: broker.list_jobs(errands.JobQuery(limit=10))
        )
    finally:
        app.close()
    assert sorted(job.task for job in stored.jobs) == ["hooks.orders", "hooks.orders"]


async def test_the_docs_receiver_accepts_a_signed_push_and_refuses_a_forged_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ERRANDS_PUSH_SECRET", "shared")
    namespace: dict[str, object] = {}
    exec(docs_example("# receiver.py: run with `uvicorn receiver:app`"), namespace)
    job = RunningJob(errands.job.new_job_id(), "hooks.orders", "default", 1)
    headers = target().request_headers(BODY, "application/json", job, FakeClock(datetime.now(UTC)))
    transport = httpx.ASGITransport(app=namespace["app"])  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        signed = await client.post("/hooks/orders", content=BODY, headers=headers)
        forged = await client.post("/hooks/orders", content=BODY + b" ", headers=headers)
    assert (signed.status_code, signed.json()) == (200, {"accepted": str(job.id)})
    assert forged.status_code == 401
    assert "mismatch" in forged.text
