"""Contract tests: the sandbox's answers and the clients' requests validate against schemas/*.openapi.yaml."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs

import httpx
import jsonschema
import pytest
import referencing
import yaml

from reconciler.errors import ApiError
from reconciler.vendors import OrionClient, Redactor, SeiClient

from ..helpers.processes import ROOT
from ..helpers.vendors import settings_for

pytestmark = pytest.mark.integration


class Recording(httpx.BaseTransport):
    def __init__(self):
        self.inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response


class Contract:
    def __init__(self, name: str, prefix: str):
        self.doc = yaml.safe_load((ROOT / "schemas" / name).read_text())
        self.prefix = prefix
        self.uri = f"urn:{name}"
        self.registry = referencing.Registry().with_resource(
            self.uri,
            referencing.Resource.from_contents(self.doc, default_specification=referencing.jsonschema.DRAFT202012),
        )
        self.routes = [(re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", p) + "$"), p) for p in self.doc["paths"]]
        self.used: set[tuple[str, str]] = set()

    def _schema(self, pointer: str) -> dict:
        return {"$ref": f"{self.uri}#{pointer}"}

    def check(self, request: httpx.Request, response: httpx.Response) -> None:
        path = request.url.path[len(self.prefix) :]
        matches = [t for rx, t in self.routes if rx.match(path)]
        # a literal path wins over a template (ListWithAccountSleeves vs {registrationId})
        template = min(matches, key=lambda t: t.count("{"), default=None)
        assert template, f"{request.method} {path} is not in the contract"
        method = request.method.lower()
        op = self.doc["paths"][template].get(method)
        assert op, f"{request.method} {template} is not in the contract"
        self.used.add((method, template))
        base = f"/paths/{template.replace('/', '~1')}/{method}"
        if request.content:
            ctype = request.headers.get("content-type", "").split(";")[0]
            body = (
                json.loads(request.content)
                if ctype == "application/json"
                else {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            )
            self._validate(f"{base}/requestBody/content/{ctype.replace('/', '~1')}/schema", body, "request", request)
        status = str(response.status_code)
        assert status in op["responses"], f"{request.method} {template} answered {status}, not in the contract"
        answer = op["responses"][status]
        if "$ref" in answer:
            answer = self.doc["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
        ctype = response.headers.get("content-type", "").split(";")[0]
        assert ctype in answer["content"], f"{template} {status} answered {ctype}"
        body = response.text if ctype == "text/plain" else response.json()
        if "$ref" in op["responses"][status]:
            pointer = f"/components/responses/{op['responses'][status]['$ref'].rsplit('/', 1)[-1]}"
        else:
            pointer = f"{base}/responses/{status}"
        self._validate(f"{pointer}/content/{ctype.replace('/', '~1')}/schema", body, "response", request)

    def _validate(self, pointer: str, instance, what: str, request: httpx.Request) -> None:
        validator = jsonschema.Draft202012Validator(self._schema(pointer), registry=self.registry)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]
        assert not errors, f"{what} of {request.method} {request.url.path} breaks the contract: {errors[:3]}"


def test_sandbox_and_clients_follow_the_openapi_contracts(sandbox):
    settings = settings_for(sandbox)
    orion_rec, sei_rec = Recording(), Recording()
    orion = OrionClient(
        settings.orion.__class__(sandbox.orion_url, None, "demo-user", settings.orion.password),
        httpx.Client(base_url=sandbox.orion_url, transport=orion_rec),
        redact=Redactor(),
    )
    sei = SeiClient(
        settings.sei.__class__(
            sandbox.sei_url, None, settings.sei.app_key, settings.sei.app_secret, "demo-user", settings.sei.password
        ),
        httpx.Client(base_url=sandbox.sei_url, transport=sei_rec),
        redact=Redactor(),
    )
    # every Orion route, success and failure
    orion.list_registrations()
    reg = orion.get_registration(31547)
    with pytest.raises(ApiError):
        orion.get_registration(1)
    orion.list_with_sleeves([31547, 31548])
    orion.histories(31547)
    orion.validate(reg)
    batch_id = orion.submit_batch([reg])
    while not orion.batch_status(batch_id).is_done:
        time.sleep(0.05)
    orion.batch_errors(batch_id)
    listed = orion.list_batches("2000-01-01T00:00:00+00:00", "2100-01-01T00:00:00+00:00")
    assert batch_id in [b.id for b in listed]
    # every SEI route
    rows = list(sei.iter_tickets(limit=2))
    instruction = {
        k: v
        for k, v in rows[0].items()
        if k
        in (
            "batchId",
            "masterOrderId",
            "strategyCode",
            "ticker",
            "cusip",
            "securityName",
            "target",
            "orderGenerationPrice",
            "affectsModel",
        )
    } | {"tradeTicketId": 88000001, "side": "Buy", "batchSize": 1}
    sei.submit_ticket(instruction)
    with pytest.raises(ApiError):
        sei.submit_ticket(instruction)  # 409
    with pytest.raises(ApiError):
        sei.submit_ticket({**instruction, "tradeTicketId": 88000002, "cusip": "000000001"})  # 400
    sei.revoke()  # grant_type=invalidate_token

    orion_contract = Contract("orion.openapi.yaml", "/api")
    sei_contract = Contract("sei.openapi.yaml", "")
    for req, resp in orion_rec.exchanges:
        orion_contract.check(req, resp)
    for req, resp in sei_rec.exchanges:
        sei_contract.check(req, resp)
    documented = {
        (m, p)
        for c in (orion_contract, sei_contract)
        for p, ops in c.doc["paths"].items()
        for m in ops
        if m in ("get", "post", "put")
    }
    assert orion_contract.used | sei_contract.used == documented


def test_contract_catches_a_broken_answer():
    """The checker itself can fail: a batch status missing isDone is refused."""
    contract = Contract("orion.openapi.yaml", "/api")
    req = httpx.Request("GET", "http://x/api/v1/Utility/BatchProcessing/1")
    resp = httpx.Response(200, json={"id": 1, "status": "Complete"})
    with pytest.raises(AssertionError, match="breaks the contract"):
        contract.check(req, resp)
