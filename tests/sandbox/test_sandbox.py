"""The clients against the real sandbox over loopback: every route, every transition, every fault."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import pytest

from reconciler.errors import (
    AmbiguousWriteError,
    ApiAuthError,
    ApiError,
    NotFoundError,
    TicketExistsError,
    TlsConfigError,
)
from reconciler.sandbox.demo import make_registration
from reconciler.sandbox.server import TlsFiles, start_sandbox
from reconciler.sandbox.state import SandboxState, SandboxTiming
from reconciler.vendors import open_vendors

from ..conftest import FAST_BATCHES
from ..helpers.external import issue_tls_files
from ..helpers.sandbox import control, raw_batch_status, wait_for
from ..helpers.vendors import settings_for

pytestmark = pytest.mark.integration

TICKET = {
    "batchId": "T-1",
    "batchSize": 1,
    "tradeTicketId": 77000001,
    "masterOrderId": 1,
    "strategyCode": "LCG",
    "side": "Buy",
    "ticker": "AAPL",
    "cusip": "037833100",
    "securityName": "Apple Inc.",
    "target": 10,
    "orderGenerationPrice": 189.5,
    "affectsModel": True,
}


def wait_done(vendors, batch_id, timeout=5.0):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = raw_batch_status(vendors, batch_id)
        if not seen or seen[-1] != st["status"]:
            seen.append(st["status"])
        if st["isDone"]:
            return st, seen
        time.sleep(0.02)
    raise AssertionError(f"batch {batch_id} not done: {seen}")


def test_orion_reads(vendors):
    summaries = vendors.orion.list_registrations()
    assert {s["registrationId"] for s in summaries} >= {31547, 31552}
    assert {"clientId", "custodialAccountNumber", "isActive", "editedBy", "editedDate"} <= set(summaries[0])
    reg = vendors.orion.get_registration(31547)
    assert reg["accountSleeves"][0]["sleeveType"] == "Custodial account"
    with pytest.raises(NotFoundError):
        vendors.orion.get_registration(1)
    bulk = vendors.orion.list_with_sleeves([31547, 31548, 424242])
    assert sorted(bulk) == [31547, 31548] and "isValid" in bulk[31547]
    assert vendors.orion.histories(31547)[0]["changeType"] == "Create"
    assert vendors.orion.validate(reg) == {"isValid": True, "validationMessage": None}


@pytest.fixture
def slow_vendors():
    """A sandbox whose batches take 1 s, so the New phase (first 20%) is long enough to observe."""
    from reconciler.sandbox.demo import demo_state

    with start_sandbox(SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=1.0))) as sb:
        with open_vendors(settings_for(sb)) as v:
            yield v


def test_batch_steps_new_processing_complete_and_records_history(slow_vendors):
    vendors = slow_vendors
    reg = vendors.orion.get_registration(31547)
    for s in reg["accountSleeves"]:
        if s.get("modelAggId") == 36:
            s["targetAllocation"] = 20
        if s.get("modelAggId") == 34:
            s["targetAllocation"] = 30
    reg["accountSleeves"].append({"accountId": 0, "sleeveType": "Unmanaged sleeve", "targetAllocation": 0})
    reg["deletedSleeveTargets"] = [30620]  # the Legacy Balanced sleeve (0%)
    status, seen = wait_done(vendors, vendors.orion.submit_batch([reg]))
    assert seen[0] == "New" and "Processing" in seen and seen[-1] == "Complete"
    assert status["itemsCompleted"] == status["totalItems"] == 1 and status["errorCount"] == 0
    live = vendors.orion.get_registration(31547)
    by_model = {s.get("modelAggId"): s for s in live["accountSleeves"]}
    assert by_model[36]["targetAllocation"] == 20 and 52 not in by_model
    new = [s for s in live["accountSleeves"] if s["sleeveType"] == "Unmanaged sleeve"]
    assert len(new) == 1 and new[0]["accountId"] > 30620  # the server assigned an account id
    history = vendors.orion.histories(31547)[0]
    assert history["editedBy"] == "demo-user" and any(
        c["field"].endswith(".targetAllocation") for c in history["changes"]
    )


def test_partially_complete_and_failed_batches_report_errors(vendors):
    good = vendors.orion.get_registration(31548)
    bad = vendors.orion.get_registration(31549)
    next(s for s in bad["accountSleeves"] if s.get("modelAggId") == 36)["targetAllocation"] = 90  # sums to 170
    status, _ = wait_done(vendors, vendors.orion.submit_batch([good, bad]))
    assert status["status"] == "PartiallyComplete" and status["errorCount"] == 1
    (err,) = vendors.orion.batch_errors(status["id"])
    assert err.is_error and err.message.startswith("registrationId 31549:") and err.registration_id == 31549
    assert "targetAllocation" in err.detail
    status, _ = wait_done(vendors, vendors.orion.submit_batch([bad, {**good, "registrationId": 999}]))
    assert status["status"] == "Failed" and status["errorCount"] == 2
    assert vendors.orion.get_registration(31549)["accountSleeves"][3]["targetAllocation"] == 20  # untouched


def test_batch_limits_are_enforced_by_the_server(sandbox, vendors):
    reg = vendors.orion.get_registration(31548)
    r = httpx.post(
        f"{sandbox.orion_url}/v1/Trading/Sleeve/Registrations/Action/process/batch",
        json=[reg] * 101,
        headers={"Authorization": f"Session {sandbox.creds.orion_token}"},
    )
    assert r.status_code == 400 and "at most 100" in r.text
    r = httpx.post(
        f"{sandbox.orion_url}/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves",
        json=list(range(501)),
        headers={"Authorization": f"Session {sandbox.creds.orion_token}"},
    )
    assert r.status_code == 400


def test_sei_paging_post_and_409(vendors):
    rows = list(vendors.sei.iter_tickets(limit=1))
    assert len(rows) == 4 and {r["tradeTicketId"] for r in rows} == {10000001, 10000101, 9000001}
    stored = vendors.sei.submit_ticket(TICKET)
    assert stored["tradeTicketId"] == TICKET["tradeTicketId"] and stored["orderId"] is None and stored["side"] == "BUY"
    assert vendors.sei.get_ticket(TICKET["tradeTicketId"])[0]["target"] == 10
    with pytest.raises(TicketExistsError) as e:
        vendors.sei.submit_ticket(TICKET)
    assert e.value.status == 409 and e.value.tracking_id
    with pytest.raises(ApiError) as bad:
        vendors.sei.submit_ticket({**TICKET, "tradeTicketId": 77000002, "cusip": "037833101"})
    assert bad.value.status == 400 and "cusip" in bad.value.body_excerpt


def test_tokens_are_minted_from_credentials(sandbox):
    s = settings_for(sandbox)
    s = s.with_overrides(
        orion=type(s.orion)(s.orion.base_url, None, "demo-user", s.orion.password),
        sei=type(s.sei)(s.sei.base_url, None, s.sei.app_key, s.sei.app_secret, "demo-user", s.sei.password),
    )
    with open_vendors(s) as v:
        assert v.orion.get_registration(31547)["registrationId"] == 31547
        assert v.sei.get_ticket(10000001)


def test_wrong_credentials_fail_clearly(sandbox):
    s = settings_for(sandbox)
    s = s.with_overrides(orion=type(s.orion)(s.orion.base_url, type(s.orion.token)("wrong-token")))
    with open_vendors(s) as v, pytest.raises(ApiAuthError, match="HTTP 401"):
        v.orion.list_registrations()


# --- faults ------------------------------------------------------------------------------------


def test_429_storm_pause_is_honoured_and_shared_by_concurrent_workers(sandbox):
    """One 429 with Retry-After: 1 holds back every worker, not just the one that saw it."""
    control(sandbox, "PUT", "/faults", content="429=1@GET:/api/v1/Trading/Sleeve/Registrations/*#1")
    finished: list[float] = []
    with open_vendors(settings_for(sandbox)) as v:
        start = time.monotonic()

        def worker():
            for _ in range(6):
                v.orion.get_registration(31547)
                time.sleep(0.05)
            finished.append(time.monotonic() - start)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # without a shared pause the three workers that never saw a 429 would finish in ~0.3 s
    assert min(finished) >= 1.0, finished
    assert max(finished) < 4.0, finished
    assert sandbox.state.counters["GET /api/v1/Trading/Sleeve/Registrations/31547"] == 25


def test_one_vendors_retry_after_never_pauses_the_other(sandbox, vendors):
    """Plan reads both vendors at once: SEI asking to wait 3 s holds SEI's workers, never Orion's."""
    control(sandbox, "PUT", "/faults", content="429=3@GET:/v1/order/tradetickets#1")
    sei_took: list[float] = []

    def read_sei():
        started = time.monotonic()
        vendors.sei.get_ticket(10000001)
        sei_took.append(time.monotonic() - started)

    reader = threading.Thread(target=read_sei)
    reader.start()
    wait_for(vendors.sei.http.gate.paused)  # the 429 has come back, and SEI's workers wait
    started = time.monotonic()
    for _ in range(3):
        vendors.orion.get_registration(31547)
    orion_took = time.monotonic() - started
    reader.join()
    assert orion_took < 1.5, orion_took  # inside SEI's 3 s pause: Orion was not held
    assert sei_took[0] >= 3.0, sei_took  # and SEI's own pause was honoured
    assert sandbox.state.counters["GET /v1/order/tradetickets"] == 2


def test_retry_after_as_http_date(sandbox, vendors):
    control(sandbox, "PUT", "/faults", content="429=date@GET:/v1/order/tradetickets#1")
    start = time.monotonic()
    assert vendors.sei.get_ticket(10000001)
    assert 0.4 <= time.monotonic() - start < 4


def test_5xx_on_read_is_retried_but_on_submit_is_ambiguous_and_nothing_was_stored(sandbox, vendors):
    control(sandbox, "PUT", "/faults", content="502@POST:*/ListWithAccountSleeves#2,500@POST:*/process/batch#1")
    assert sorted(vendors.orion.list_with_sleeves([31547])) == [31547]
    reg = vendors.orion.get_registration(31548)
    with pytest.raises(AmbiguousWriteError):
        vendors.orion.submit_batch([reg])
    assert sandbox.state.batches == {}


def test_accepted_then_dropped_ticket_is_never_blindly_resent(sandbox, vendors):
    control(sandbox, "PUT", "/faults", content="drop@POST:/v1/order/tradetickets#1")
    with pytest.raises(AmbiguousWriteError, match="outcome is unknown"):
        vendors.sei.submit_ticket(TICKET)
    assert control(sandbox, "GET", f"/tickets/{TICKET['tradeTicketId']}/count") == {"rows": 1, "posts": 1}
    assert len(vendors.sei.get_ticket(TICKET["tradeTicketId"])) == 1  # read back: it is there
    assert sandbox.state.counters["POST /v1/order/tradetickets"] == 1


def test_slow_answers_time_out_reads_retry_writes_are_ambiguous(sandbox):
    control(
        sandbox,
        "PUT",
        "/faults",
        content="slow=1.5@GET:/v1/order/tradetickets#1,slow=1.5@POST:/v1/order/tradetickets#1",
    )
    with open_vendors(settings_for(sandbox, read_timeout=0.5)) as v:
        assert v.sei.get_ticket(10000001)
        with pytest.raises(AmbiguousWriteError):
            v.sei.submit_ticket(TICKET)
    assert control(sandbox, "GET", f"/tickets/{TICKET['tradeTicketId']}/count") == {"rows": 1, "posts": 1}


def test_stuck_batch_stays_processing_until_released(sandbox, vendors):
    control(sandbox, "PUT", "/faults", content="stuck@POST:*/process/batch#1")
    batch_id = vendors.orion.submit_batch([vendors.orion.get_registration(31548)])
    time.sleep(FAST_BATCHES * 3)
    status = raw_batch_status(vendors, batch_id)
    assert status["status"] == "Processing" and status["isDone"] is False
    assert control(sandbox, "POST", "/batches/release") == {"released": 1}
    assert wait_done(vendors, batch_id)[0]["status"] == "Complete"


def test_a_batch_released_with_a_delay_queues_again_first(sandbox, vendors):
    """What lets a test meet a released batch unfinished however slowly its next step starts."""
    control(sandbox, "PUT", "/faults", content="stuck@POST:*/process/batch#1")
    batch_id = vendors.orion.submit_batch([vendors.orion.get_registration(31548)])
    assert control(sandbox, "POST", "/batches/release?after=1") == {"released": 1}
    status = raw_batch_status(vendors, batch_id)
    assert (status["status"], status["isDone"], status["elapsed"]) == ("New", False, "0.0s")
    t = time.monotonic()
    assert wait_done(vendors, batch_id)[0]["status"] == "Complete"
    assert time.monotonic() - t >= 1


def test_outside_git_edit_is_recorded_with_editor(sandbox, vendors):
    control(sandbox, "PATCH", "/registrations/31548", json={"editedBy": "jdoe", "set": {"isDoNotTrade": True}})
    reg = vendors.orion.get_registration(31548)
    assert reg["isDoNotTrade"] is True and reg["editedBy"] == "jdoe"
    h = vendors.orion.histories(31548)[0]
    assert h["editedBy"] == "jdoe" and h["changes"] == [{"field": "isDoNotTrade", "before": False, "after": True}]


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return issue_tls_files(tmp_path_factory.mktemp("tls"))


def test_mtls_with_a_client_certificate_works_and_without_fails_fast(certs):
    tls = TlsFiles(certs["server_cert"], certs["server_key"], client_ca=certs["ca"])
    with start_sandbox(tls=tls) as sb:
        base = settings_for(sb)
        with_cert = base.with_overrides(
            sei=type(base.sei)(
                **{
                    **base.sei.__dict__,
                    "client_cert": certs["client_cert"],
                    "client_key": certs["client_key"],
                    "ca_bundle": certs["ca"],
                }
            )
        )
        with open_vendors(with_cert) as v:
            assert v.sei.get_ticket(10000001)
        without = base.with_overrides(sei=type(base.sei)(**{**base.sei.__dict__, "ca_bundle": certs["ca"]}))
        start = time.monotonic()
        with open_vendors(without) as v, pytest.raises(TlsConfigError, match="SEI_CLIENT_CERT"):
            v.sei.get_ticket(10000001)
        assert time.monotonic() - start < 3  # no retries, no backoff
        assert sb.state.counters.get("GET /v1/order/tradetickets") == 1  # only the request with a certificate


# --- scale and the documented command ----------------------------------------------------------


def test_reading_2250_registrations_uses_one_request_per_chunk(sandbox, vendors):
    """Size is not the point (tests/benchmarks/ measures 100,000): several full chunks and a partial one are."""
    regs = [
        make_registration(
            100000 + i,
            [(36, 50, 50, 50), (34, 20, 20, 20), (30, 10, 10, 10), (41, 10, 10, 10), (45, 5, 5, 5), (52, 5, 5, 5)],
            first_account=1_000_000 + i * 10,
        )
        for i in range(2_250)
    ]
    control(sandbox, "PUT", "/state", json={"registrations": regs, "tickets": []}, timeout=120)
    control(sandbox, "POST", "/counters/reset")
    start = time.monotonic()
    got = vendors.orion.list_with_sleeves([r["registrationId"] for r in regs])
    elapsed = time.monotonic() - start
    counts = control(sandbox, "GET", "/counters")["requests"]
    assert len(got) == 2_250 and set(got) == {r["registrationId"] for r in regs}
    assert counts == {"POST /api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves": 5}  # ⌈2,250 / 500⌉
    print(f"\nread 2,250 registrations in {elapsed:.2f} s with 5 requests")


def test_reconciler_sandbox_command_serves_both_apis(tmp_path):
    """`reconciler sandbox --port N --state FILE` in a real subprocess, as the README shows."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path / "state.json"
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "--port", str(port), "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{base}/_sandbox/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        r = httpx.get(
            f"{base}/api/v1/Trading/Sleeve/Registrations/31547", headers={"Authorization": "Session demo-orion-token"}
        )
        assert r.status_code == 200 and r.json()["registrationId"] == 31547
        r = httpx.get(
            f"{base}/v1/order/tradetickets",
            headers={"Authorization": "Bearer demo-sei-token", "AppKey": "demo-app-key"},
        )
        assert r.status_code == 200 and r.json()["paging"]["totalCount"] == 4
        assert httpx.get(f"{base}/api/v1/Trading/Sleeve/Registrations").status_code == 401
        assert state.exists()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert "export ORION_TOKEN=demo-orion-token SEI_TOKEN=demo-sei-token SEI_APP_KEY=demo-app-key" in err


def test_chance_faults_hit_about_their_share_and_repeat_under_one_seed():
    from reconciler.sandbox.faults import FaultBook, parse_faults

    def hits(seed: int) -> list[bool]:
        book = FaultBook(parse_faults("429=1@*%5,503@POST:/v1/order/tradetickets%3"), seed=seed)
        return [book.take("GET", "/api/v1/x") is not None for _ in range(4000)]

    first = hits(7)
    assert 140 <= sum(first) <= 260  # 5% of 4,000 is 200
    assert first == hits(7) and first != hits(8)
    book = FaultBook(parse_faults("503@POST:/v1/order/tradetickets%3"), seed=1)
    assert book.take("GET", "/v1/order/tradetickets") is None  # only the matching requests draw
    with pytest.raises(ValueError, match="bad percentage"):
        parse_faults("429@*%lots")


def test_a_latency_range_gives_each_batch_its_own_time_within_it():
    from reconciler.sandbox.batches import parse_latency

    assert parse_latency("2") == (2.0, None)
    assert parse_latency("1-2") == (1.0, 2.0)
    with pytest.raises(ValueError, match="range like 1-2"):
        parse_latency("fast")
    timing = SandboxTiming(batch_latency=1.0, batch_latency_max=2.0, seed=3)
    drawn = [timing.draw() for _ in range(200)]
    assert all(1.0 <= d <= 2.0 for d in drawn) and max(drawn) - min(drawn) > 0.8
    assert SandboxTiming(batch_latency=0.5).draw() == 0.5


def test_the_sandbox_answers_kept_alive_connections_without_nagle_delay():
    """asyncio turns TCP_NODELAY on only for accepted sockets whose listening socket says IPPROTO_TCP;
    without it each second request on a kept-alive connection waited 40 ms for a delayed ACK, and the
    benchmarks measured the sandbox instead of reconciler."""
    import asyncio
    import socket

    from reconciler.sandbox.server import listening_socket

    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):  # type: ignore[override]
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listening_socket("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
            value = await asyncio.wait_for(seen, 5)
            writer.close()
            return value
        finally:
            server.close()

    assert asyncio.run(accepted_nodelay()) != 0


def test_sleeve_lists_that_are_not_objects_are_a_400_not_a_crash(sandbox):
    """Found by fuzzing the sandbox against its own OpenAPI description (schemathesis): a sleeve given as
    a string made Validate and the batch POST fail with 500."""
    headers = {"Authorization": f"Session {sandbox.creds.orion_token}"}
    base = f"{sandbox.orion_url}/v1/Trading/Sleeve/Registrations"
    bad = {"registrationId": 31547, "accountSleeves": ["not a sleeve"]}
    validate = httpx.put(f"{base}/31547/Validate", json=bad, headers=headers, timeout=30)
    batch = httpx.post(f"{base}/Action/process/batch", json=[bad], headers=headers, timeout=30)
    for r in (validate, batch):
        assert r.status_code == 400 and "accountSleeves[0]: must be object" in r.json()["message"], r.text
    assert not [w for w in sandbox.state.writes if w["api"] == "orion"]
