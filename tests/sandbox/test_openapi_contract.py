"""The sandbox keeps its published contract: schemathesis fuzzes the running sandbox against its own
OpenAPI descriptions (schemas/orion.openapi.yaml, schemas/sei.openapi.yaml) with every check it has.

Among them: every status code and content type it answers is documented; a request the description
forbids is refused (the vendor's 400 or 404), and one it allows is accepted; responses match their
schemas; unknown methods answer 405 with an exact `Allow`. Positive cases are valid for real: the hooks
in openapi_formats.py generate CUSIPs with their check digit and cursors the server issued. Settings,
credentials and the seed are in tests/sandbox/contract/; any schemathesis warning (e.g. "every answer
was 401") fails the run, so a run that tested nothing cannot pass. The failure message holds the
command that reproduces it by hand against `reconciler sandbox`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reconciler.sandbox.contract import cursor_offset, encode_cursor, parse_instant

from ..helpers.sandbox import counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("vendor", ["orion", "sei"])
def test_the_sandbox_answers_as_its_openapi_description_says(sandbox, vendor):
    url = sandbox.orion_url if vendor == "orion" else sandbox.url
    command = [
        *("python", "-m", "schemathesis.cli", "--config-file", f"tests/sandbox/contract/{vendor}.toml"),
        *("run", f"schemas/{vendor}.openapi.yaml", "--url", url, "--checks", "all"),
    ]
    c = sandbox.creds
    env = {
        **os.environ,
        **sandbox.env(),  # ORION_TOKEN, SEI_TOKEN, SEI_APP_KEY: this sandbox's own, random ones
        **{"ORION_USERNAME": c.orion_username, "ORION_PASSWORD": c.orion_password, "SEI_APP_SECRET": c.sei_app_secret},
        **{"PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
    }
    run = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    by_hand = f"PYTHONPATH=. {' '.join(command)}  # against `reconciler sandbox --port N`, with --url"
    assert run.returncode == 0, f"{by_hand}\n{run.stdout[-12000:]}\n{run.stderr[-3000:]}"
    assert "No issues found" in run.stdout, run.stdout[-3000:]
    # the fuzzer reached every operation, with credentials that worked (warnings fail the run above)
    requests = counts(sandbox)
    assert sum(requests.values()) > 200, requests


def test_requests_the_description_forbids_get_the_vendors_400_naming_the_field(sandbox):
    orion = {"Authorization": f"Session {sandbox.creds.orion_token}"}
    sei = {"Authorization": f"Bearer {sandbox.creds.sei_token}", "AppKey": sandbox.creds.sei_app_key}
    batches = httpx.get(f"{sandbox.orion_url}/v1/Utility/BatchProcessing?startDate=yesterday", headers=orion)
    assert batches.status_code == 400 and "startDate: not an RFC 3339 date-time" in batches.json()["message"]
    one = httpx.get(f"{sandbox.orion_url}/v1/Trading/Sleeve/Registrations/31547?includeAssets=maybe", headers=orion)
    assert one.status_code == 400 and "includeAssets: must be boolean" in one.json()["message"]
    page = httpx.get(f"{sandbox.url}/v1/order/tradetickets?status=Pending&cursor=abc", headers=sei)
    assert page.status_code == 400 and page.json()["code"] == "request.invalid"
    assert {e["field"] for e in page.json()["errors"]} == {"status", "cursor"}


def test_unknown_routes_and_methods_answer_in_the_vendors_json_error_body(sandbox):
    orion = {"Authorization": f"Session {sandbox.creds.orion_token}"}
    word = httpx.get(f"{sandbox.orion_url}/v1/Trading/Sleeve/Registrations/abc", headers=orion)
    assert word.status_code == 404 and "message" in word.json()  # an {id:int} route, as ASP.NET matches it
    wrong = httpx.get(f"{sandbox.orion_url}/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves", headers=orion)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST" and "message" in wrong.json()
    sei = httpx.delete(f"{sandbox.url}/v1/order/tradetickets")
    assert sei.status_code == 405 and set(sei.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert sei.json()["code"] == "method.notallowed"
    head = httpx.head(f"{sandbox.orion_url}/v1/Trading/Sleeve/Registrations/31547", headers=orion)
    assert head.status_code == 200 and not head.content  # HEAD is GET without the body, as starlette routes it


def test_cursors_are_the_servers_own_and_date_times_are_rfc_3339():
    assert cursor_offset(encode_cursor(300)) == 300
    for forged in ("abc", "MDA=", "LTE=", encode_cursor(5) + "=", "", None):  # "00", "-1", padded twice
        assert cursor_offset(forged) is None, forged
    assert parse_instant("2026-12-06T14:00:00Z") == parse_instant("2026-12-06T15:00:00.000+01:00") == 1796565600
    assert parse_instant("2026-12-06t14:00:00.5z") == 1796565600.5
    assert parse_instant("2016-12-31T23:59:60Z") == parse_instant("2016-12-31T23:59:59Z")  # a leap second
    for not_one in ("2026-12-06", "2026-12-06T14:00:00", "2026-13-01T00:00:00Z", "2026-12-06T14:00:00+24:00"):
        assert parse_instant(not_one) is None, not_one
