"""Vendor clients against httpx.MockTransport: auth, retries, Retry-After, errors, redaction."""

from __future__ import annotations

import email.utils
import json
import logging
import ssl
import time

import httpx
import pytest

from reconciler.config import load_settings
from reconciler.errors import (
    BODY_EXCERPT_LIMIT,
    AmbiguousWriteError,
    ApiAuthError,
    ApiError,
    NotFoundError,
    TicketExistsError,
    TlsConfigError,
)
from reconciler.vendors import (
    HttpPolicy,
    OrionClient,
    PauseGate,
    Redactor,
    SeiClient,
    parse_batch_id,
    parse_retry_after,
)

from ..helpers.vendors import FAST, orion, sei

CANARIES = {
    "ORION_TOKEN": "canary-orion-tok-9f3a",
    "ORION_PASSWORD": "canary-orion-pw-77b1",
    "SEI_TOKEN": "canary-sei-tok-c0de",
    "SEI_APP_KEY": "canary-appkey-5e5e",
    "SEI_APP_SECRET": "canary-appsecret-1d1d",
    "SEI_PASSWORD": "canary-sei-pw-2b2b",
}


@pytest.mark.parametrize(
    "text,expected",
    [("26140410", 26140410), (" 26140410\n", 26140410), ('"26140410"', 26140410), ('  " 7 "  ', 7), ('{"id": 12}', 12)],
)
def test_parse_batch_id_accepts_every_form(text, expected):
    assert parse_batch_id(text) == expected


def test_parse_batch_id_refuses_garbage():
    with pytest.raises(ApiError, match="cannot read a batch id"):
        parse_batch_id("<html>oops</html>")


def test_parse_retry_after_seconds_and_dates():
    now = time.time()
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(email.utils.formatdate(now + 10, usegmt=True), now=now) == pytest.approx(10, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 10, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_orion_mints_token_with_basic_and_client_headers_then_reminted_once_on_401():
    """No ORION_TOKEN: mint with Basic; a 401 mints again and retries that call once."""
    seen = []
    minted = iter(["t1", "t2"])

    def handler(req: httpx.Request):
        seen.append((req.method, req.url.path, req.headers.get("authorization"), req.headers.get("client_id")))
        if req.url.path.endswith("/Security/Token"):
            return httpx.Response(200, json={"access_token": next(minted), "expires_in": 36000})
        if req.headers["authorization"] == "Session t1":
            return httpx.Response(401, json={"message": "expired"})
        return httpx.Response(200, json=[{"registrationId": 1}])

    client = orion(handler, token=None, username="u", password="p-secret")
    assert client.list_registrations() == [{"registrationId": 1}]
    assert seen[0][:2] == ("GET", "/api/v1/Security/Token") and seen[0][2].startswith("Basic ") and seen[0][3] == "cid"
    assert [s[2] for s in seen] == [seen[0][2], "Session t1", seen[0][2], "Session t2"]
    assert [s[1] for s in seen] == [
        "/api/v1/Security/Token",
        "/api/v1/Trading/Sleeve/Registrations",
        "/api/v1/Security/Token",
        "/api/v1/Trading/Sleeve/Registrations",
    ]


def test_orion_second_401_is_an_auth_error():
    client = orion(lambda req: httpx.Response(401, json={"message": "denied"}))
    with pytest.raises(ApiAuthError, match="HTTP 401"):
        client.list_registrations()


def test_orion_bulk_read_chunks_and_leaves_unknown_ids_out():
    bodies = []

    def handler(req):
        ids = json.loads(req.content)
        bodies.append(ids)
        return httpx.Response(200, json=[{"registrationId": i} for i in ids if i != 3])

    got = orion(handler).list_with_sleeves(range(1, 8), chunk=3, workers=2)
    assert sorted(bodies) == [[1, 2, 3], [4, 5, 6], [7]] and sorted(got) == [1, 2, 4, 5, 6, 7]


def test_sei_mints_token_renews_before_expiry_and_sends_app_key():
    now = [1000.0]
    mints = []

    def handler(req):
        if req.url.path == "/v2/oauthtoken":
            form = dict(x.split("=") for x in req.content.decode().split("&"))
            mints.append(form)
            return httpx.Response(200, json={"access_token": f"t{len(mints)}", "expires_in": 3600})
        assert req.headers["appkey"] == "key-1234"
        return httpx.Response(
            200, json={"data": [{"tradeTicketId": 1, "auth": req.headers["authorization"]}], "paging": {"next": None}}
        )

    client = sei(handler, token=None, clock=lambda: now[0], app_secret="s", username="u", password="pw")
    assert client.get_ticket(1)[0]["auth"] == "Bearer t1"
    now[0] += 1400  # used every 23 minutes: never idle long enough to die
    assert client.get_ticket(1)[0]["auth"] == "Bearer t1"
    now[0] += 1400  # 800 s of life left: still fine
    assert client.get_ticket(1)[0]["auth"] == "Bearer t1"
    now[0] += 600  # under the 5-minute margin: mint anew before the call
    assert client.get_ticket(1)[0]["auth"] == "Bearer t2"
    now[0] += 25 * 60  # 25 minutes without use: SEI kills it at 30, so mint anew [docs]
    assert client.get_ticket(1)[0]["auth"] == "Bearer t3"
    assert mints[0]["grant_type"] == "client_credentials" and mints[0]["username"] == "u"
    client.revoke()
    assert mints[-1] == {"grant_type": "invalidate_token", "token": "t3"}


def test_sei_invalid_api_key_is_fatal_names_the_variable_and_never_mints_again():
    mints = []

    def handler(req):
        if req.url.path == "/v2/oauthtoken":
            mints.append(req)
            return httpx.Response(200, json={"access_token": f"t{len(mints)}", "expires_in": 3600})
        return httpx.Response(
            401,
            json={
                "code": "gateway.authentication.failure",
                "message": "Invalid ApiKey for given resource",
                "trackingId": "tr-9",
            },
        )

    client = sei(handler, token=None, app_secret="s", username="u", password="pw")
    with pytest.raises(ApiAuthError) as info:
        client.get_ticket(1)
    assert len(mints) == 1 and "SEI_APP_KEY" in str(info.value) and "127.0.0.1" in str(info.value)
    assert info.value.tracking_id == "tr-9"


def test_sei_renews_once_on_401_access_token_expired():
    calls = []

    def handler(req):
        calls.append(req.url.path)
        if req.url.path == "/v2/oauthtoken":
            return httpx.Response(200, json={"access_token": "fresh", "expires_in": 3600})
        if req.headers["authorization"] != "Bearer fresh":
            return httpx.Response(
                401, json={"code": "gateway.authentication.failure", "message": "Access Token expired"}
            )
        return httpx.Response(200, json={"data": [], "paging": {"next": None}})

    client = sei(handler, token="old", app_secret="s", username="u", password="pw")
    assert client.get_ticket(5) == []
    assert calls == ["/v1/order/tradetickets", "/v2/oauthtoken", "/v1/order/tradetickets"]


def test_sei_paging_follows_cursor_and_stops_on_repeat():
    pages = {None: ("c1", [1, 2]), "c1": ("c2", [3]), "c2": (None, [4])}

    def handler(req):
        nxt, ids = pages[req.url.params.get("cursor")]
        return httpx.Response(200, json={"data": [{"tradeTicketId": i} for i in ids], "paging": {"next": nxt}})

    assert [r["tradeTicketId"] for r in sei(handler).iter_tickets()] == [1, 2, 3, 4]
    loop = sei(lambda req: httpx.Response(200, json={"data": [], "paging": {"next": "same"}}))
    with pytest.raises(ApiError, match="cursor twice"):
        list(loop.iter_tickets())


def test_safe_read_is_retried_on_5xx_and_timeouts():
    answers = iter([httpx.Response(502), "timeout", httpx.Response(200, json=[])])

    def handler(req):
        a = next(answers)
        if a == "timeout":
            raise httpx.ReadTimeout("slow", request=req)
        return a

    assert orion(handler).list_registrations() == []


def test_write_is_never_retried_after_a_5xx_or_a_lost_answer():
    for failure in (httpx.Response(500, text="boom"), httpx.ReadTimeout("t"), httpx.RemoteProtocolError("dropped")):
        posts = []

        def handler(req, failure=failure, posts=posts):
            posts.append(req)
            if isinstance(failure, Exception):
                raise failure
            return failure

        with pytest.raises(AmbiguousWriteError, match="outcome is unknown"):
            sei(handler).submit_ticket({"tradeTicketId": 1})
        assert len(posts) == 1


def test_write_is_retried_when_the_server_surely_did_not_act():
    """Connection refused and 429 mean nothing was done: the write may go again."""
    answers = iter(["refused", httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, text="77")])

    def handler(req):
        a = next(answers)
        if a == "refused":
            raise httpx.ConnectError("refused", request=req)
        return a

    assert orion(handler).submit_batch([{"registrationId": 1}]) == 77


def test_503_without_retry_after_on_a_write_is_ambiguous_but_with_it_is_retried():
    with pytest.raises(AmbiguousWriteError):
        orion(lambda req: httpx.Response(503)).submit_batch([{"registrationId": 1}])
    answers = iter([httpx.Response(503, headers={"Retry-After": "0"}), httpx.Response(200, text="5")])
    assert orion(lambda req: next(answers)).submit_batch([{"registrationId": 1}]) == 5


def test_retry_after_is_capped_and_honoured_until_the_deadline():
    started = time.monotonic()
    policy = HttpPolicy(max_attempts=2, backoff_base=0.001, retry_after_cap=0.2, deadline=1.0)
    calls = []
    client = orion(lambda req: calls.append(1) or httpx.Response(429, headers={"Retry-After": "3600"}), policy=policy)
    with pytest.raises(ApiError, match="still throttled after"):
        client.list_registrations()
    elapsed = time.monotonic() - started
    assert 0.6 < elapsed < 2.0  # capped at 0.2 s a pause (never an hour), ended by the 1 s deadline
    assert len(calls) > policy.max_attempts  # throttling is not counted as failed attempts


def test_pause_gate_refuses_to_wait_past_the_deadline():
    gate = PauseGate()
    gate.pause(10)
    with pytest.raises(TimeoutError):
        gate.wait(time.monotonic() + 1)


def test_tls_refusal_is_a_config_error_never_retried():
    attempts = []

    def handler(req):
        attempts.append(req)
        try:
            raise ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required")
        except ssl.SSLError as e:
            raise httpx.ReadError("tlsv13 alert certificate required", request=req) from e

    with pytest.raises(TlsConfigError, match="SEI_CLIENT_CERT"):
        sei(handler).submit_ticket({"tradeTicketId": 1})
    assert len(attempts) == 1


def test_vendor_errors_carry_status_tracking_id_and_transient_flag():
    def handler(req):
        return httpx.Response(
            400,
            json={
                "code": "request.invalid",
                "message": "bad cusip",
                "trackingId": "trk-1",
                "transient": "false",
                "errors": [{"field": "cusip"}],
                "pad": "x" * 5000,
            },
        )

    with pytest.raises(ApiError) as e:
        sei(handler).submit_ticket({"tradeTicketId": 1})
    err = e.value
    assert (err.method, err.path, err.status, err.tracking_id, err.transient) == (
        "POST",
        "/v1/order/tradetickets",
        400,
        "trk-1",
        False,
    )
    assert "request.invalid: bad cusip" in str(err) and len(err.body_excerpt) == BODY_EXCERPT_LIMIT
    transient = sei(lambda req: httpx.Response(400, json={"code": "x", "transient": True}))
    with pytest.raises(ApiError) as e2:
        transient.submit_ticket({})
    assert e2.value.transient is True


def test_status_codes_map_to_error_types():
    with pytest.raises(NotFoundError):
        orion(lambda req: httpx.Response(404, json={"message": "no"})).get_registration(9)
    with pytest.raises(TicketExistsError):
        sei(lambda req: httpx.Response(409, json={"code": "resource.conflict"})).submit_ticket({"tradeTicketId": 1})


def test_canary_secrets_never_appear_in_errors_reprs_or_logs(caplog, monkeypatch):
    """A server that echoes credentials back: messages, reprs and debug logs stay clean."""
    caplog.set_level(logging.DEBUG)
    for k, v in CANARIES.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("ORION_USERNAME", "ops")
    monkeypatch.setenv("SEI_USERNAME", "ops")
    settings = load_settings(config_file=None)

    def echo(req):
        return httpx.Response(400, text=f"bad request {dict(req.headers)} {req.content.decode(errors='replace')}")

    texts = [repr(settings), str(settings)]
    for make in (
        lambda: OrionClient(
            settings.orion,
            httpx.Client(base_url="http://127.0.0.1/api", transport=httpx.MockTransport(echo)),
            redact=Redactor(),
            policy=FAST,
        ).list_registrations(),
        lambda: SeiClient(
            settings.sei,
            httpx.Client(base_url="http://127.0.0.1", transport=httpx.MockTransport(echo)),
            redact=Redactor(),
            policy=FAST,
        ).submit_ticket({"note": CANARIES["SEI_APP_KEY"]}),
    ):
        with pytest.raises(ApiError) as e:
            make()
        texts += [str(e.value), repr(e.value), e.value.body_excerpt]
    texts += [r.getMessage() for r in caplog.records]
    blob = "\n".join(texts)
    assert "bad request" in blob
    for v in CANARIES.values():
        assert v not in blob
