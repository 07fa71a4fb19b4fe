"""Orion Connect: sleeve registrations, the batch workflow, histories (API.md §1).

Paths are relative to ORION_BASE_URL (which ends in /api). Auth is `Authorization: Session <token>`,
the token given (ORION_TOKEN) or minted from /v1/Security/Token with Basic credentials, and minted
again once on a 401.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.config import OrionSettings
from reconciler.errors import ApiAuthError, ApiError
from reconciler.fields import ORION_BATCH_LIMIT, ORION_READ_CHUNK
from reconciler.vendors.answers import ambiguous_answer, expect_int, expect_object, expect_objects
from reconciler.vendors.auth import Minted, TokenAuth
from reconciler.vendors.http import VendorHttp
from reconciler.vendors.redaction import Redactor
from reconciler.vendors.retry import HttpPolicy, PauseGate
from reconciler.vendors.tls import VendorTls

__all__ = ["BatchError", "BatchStatus", "OrionClient", "parse_batch_id"]

REGISTRATIONS = "/v1/Trading/Sleeve/Registrations"
BULK_READ = f"{REGISTRATIONS}/ListWithAccountSleeves"
SUBMIT_BATCH = f"{REGISTRATIONS}/Action/process/batch"
BATCH_LIST = "/v1/Utility/BatchProcessing"
BATCH_STATUS = "/v1/Utility/BatchProcessing/{batch_id}"
TOKEN = "/v1/Security/Token"
TLS_VARIABLES = "ORION_CA_BUNDLE"

_BATCH_ID = re.compile(r"^\s*\"?\s*(\d+)\s*\"?\s*$")


def parse_batch_id(text: str) -> int:
    """The batch id from the text/plain answer: `26140410`, with whitespace or quotes, or JSON.

    Raises a plain ApiError; `submit_batch` turns it into an in-doubt outcome (the server accepted).
    """
    m = _BATCH_ID.match(text)
    if m:
        return int(m.group(1))
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        value = value.get("id") or value.get("batchId")
    if isinstance(value, (int, str)) and str(value).strip().isdigit():
        return int(value)
    raise ApiError(f"cannot read a batch id from the answer {text[:60]!r}", method="POST", path=SUBMIT_BATCH)


class OrionClient:
    def __init__(
        self,
        settings: OrionSettings,
        client: httpx.Client,
        *,
        redact: Redactor,
        policy: HttpPolicy = HttpPolicy(),
        gate: PauseGate | None = None,
        tls: VendorTls | None = None,
    ):
        self.settings = settings
        for s in (settings.token, settings.password, settings.client_secret):
            if s is not None:
                redact.add(s.reveal())
        self.redact = redact
        self.auth = TokenAuth(
            vendor="Orion",
            given=settings.token.reveal() if settings.token else None,
            given_variable="ORION_TOKEN",
            mint_variables="ORION_USERNAME and ORION_PASSWORD",
            mint=self._mint if settings.username and settings.password else None,
            headers=lambda token: {"Authorization": f"Session {token}"},
        )
        self.http = VendorHttp(
            "orion",
            client,
            auth=self.auth,
            redact=redact,
            policy=policy,
            gate=gate,
            tls=tls or VendorTls("Orion", TLS_VARIABLES, True),
            url_variable="ORION_BASE_URL",
        )

    # --- auth ---------------------------------------------------------------------------------------

    def _mint(self) -> Minted:
        """GET /v1/Security/Token with Basic credentials (and client_id/client_secret where given) [docs]."""
        s = self.settings
        assert s.username and s.password
        basic = base64.b64encode(f"{s.username}:{s.password.reveal()}".encode()).decode()
        self.redact.add(basic)
        headers = {"Authorization": f"Basic {basic}"}
        if s.client_id and s.client_secret:
            headers |= {"client_id": s.client_id, "client_secret": s.client_secret.reveal()}
        try:
            resp = self.http.request("GET", TOKEN, safe=True, headers=headers, authenticated=False, quote_body=False)
        except ApiAuthError as e:
            raise ApiAuthError(
                f"Orion refused the login at {self.http.host}: check ORION_USERNAME and ORION_PASSWORD"
                f"{' (and ORION_CLIENT_ID/ORION_CLIENT_SECRET)' if s.client_id else ''}",
                method="GET",
                path=TOKEN,
                status=e.status,
                tracking_id=e.tracking_id,
            ) from e
        body = self.http.read_json(resp, "GET", TOKEN, quote_body=False)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ApiError("the token answer has no access_token", method="GET", path=TOKEN)
        self.redact.add(token)
        expires = body.get("expires_in")
        return Minted(token, float(expires) if isinstance(expires, (int, float)) and expires > 0 else None)

    # --- reads --------------------------------------------------------------------------------------

    def _get(self, path: str, params: dict | None = None) -> Any:
        return self.http.read_json(self.http.request("GET", path, safe=True, params=params), "GET", path)

    def list_registrations(self) -> list[dict]:
        return expect_objects(self._get(REGISTRATIONS), "GET", REGISTRATIONS)

    def get_registration(self, registration_id: int) -> dict:
        path = f"{REGISTRATIONS}/{registration_id}"
        return expect_object(self._get(path, {"includeAssets": "false", "includeCostBasis": "false"}), "GET", path)

    def list_with_sleeves(
        self, ids: Iterable[int], *, chunk: int = ORION_READ_CHUNK, workers: int = 4
    ) -> dict[int, dict]:
        """The bulk read, in chunks of `chunk` ids, `workers` at a time. Unknown ids are absent."""
        ids = list(dict.fromkeys(ids))
        chunks = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]

        def read(part: list[int]) -> list[dict]:
            resp = self.http.request("POST", BULK_READ, safe=True, json_body=part)
            rows = expect_objects(self.http.read_json(resp, "POST", BULK_READ), "POST", BULK_READ)
            for reg in rows:
                reg["registrationId"] = expect_int(reg.get("registrationId"), "POST", BULK_READ, "a registrationId")
                expect_objects(reg.get("accountSleeves"), "POST", BULK_READ, "accountSleeves", allow_null=True)
            return rows

        out: dict[int, dict] = {}
        if len(chunks) <= 1 or workers <= 1:
            results = [read(c) for c in chunks]
        else:
            with ThreadPoolExecutor(min(workers, len(chunks)), thread_name_prefix="orion-read") as pool:
                results = list(pool.map(read, chunks))
        for rows in results:
            for reg in rows:
                out[reg["registrationId"]] = reg
        return out

    def histories(self, registration_id: int) -> list[dict]:
        path = f"{REGISTRATIONS}/{registration_id}/Histories"
        return expect_objects(self._get(path), "GET", path)

    def validate(self, registration: dict) -> dict:
        path = f"{REGISTRATIONS}/{registration['registrationId']}/Validate"
        # a server-side dry run that changes nothing, so it is as safe to repeat as a read
        resp = self.http.request("PUT", path, safe=True, json_body=registration)
        return expect_object(self.http.read_json(resp, "PUT", path), "PUT", path)

    # --- the batch workflow -------------------------------------------------------------------------

    def submit_batch(self, registrations: list[dict]) -> int:
        """POST one batch; returns its id. Never retried once sent. An answer that cannot be read is
        in doubt (AmbiguousWriteError): Orion accepted something, perhaps the batch."""
        if not 1 <= len(registrations) <= ORION_BATCH_LIMIT:
            raise ValueError(f"a batch holds 1 to {ORION_BATCH_LIMIT} registrations, not {len(registrations)}")
        resp = self.http.request("POST", SUBMIT_BATCH, safe=False, json_body=registrations)
        try:
            return parse_batch_id(resp.text)
        except (ApiError, UnicodeDecodeError) as e:
            raise ambiguous_answer(
                resp, "POST", SUBMIT_BATCH, "the batch id in its answer cannot be read", self.redact
            ) from e

    def batch_status(self, batch_id: int) -> BatchStatus:
        path = BATCH_STATUS.format(batch_id=batch_id)
        return _batch_status(expect_object(self._get(path), "GET", path), "GET", path, batch_id)

    def batch_errors(self, batch_id: int) -> list[BatchError]:
        path = BATCH_STATUS.format(batch_id=batch_id) + "/Errors"
        return [_batch_error(row) for row in expect_objects(self._get(path), "GET", path)]

    def list_batches(self, start: str, end: str, *, status: str | None = None) -> list[BatchStatus]:
        """Batches created between `start` and `end` (ISO 8601): how a lost batch id is found again."""
        params = {"startDate": start, "endDate": end}
        if status:
            params["status"] = status
        return [
            _batch_status(row, "GET", BATCH_LIST)
            for row in expect_objects(self._get(BATCH_LIST, params), "GET", BATCH_LIST)
        ]


@dataclass(frozen=True)
class BatchStatus:
    """A batch as BatchProcessing describes it [seed, docs], read once here so nobody else parses it."""

    id: int
    status: str  # New, Processing, Complete, PartiallyComplete, Failed, Canceled
    is_done: bool
    error_count: int
    total_items: int | None
    items_completed: int | None
    correlation_id: str | None  # what Orion's support asks for
    message: str | None
    created_by: str | None


@dataclass(frozen=True)
class BatchError:
    """One row of a batch's /Errors. Rows do not reliably name their registration [docs]; the sandbox (and,
    we assume, Orion) starts `errorMessage` with "registrationId <n>:", a hint, never proof [assumed]."""

    message: str
    severity: str  # Error, Warning or Information: only Error fails an item
    registration_id: int | None  # from the message's prefix, when there is one
    detail: str  # the message without that prefix

    @property
    def is_error(self) -> bool:
        return self.severity == "Error"


_ERROR_PREFIX = re.compile(r"^registrationId (\d+):\s*")


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _batch_status(row: dict, method: str, path: str, batch_id: int | None = None) -> BatchStatus:
    is_done = row.get("isDone")
    if is_done is not None and not isinstance(is_done, bool):
        raise ApiError(f"isDone is {is_done!r}, not a boolean", method=method, path=path)
    ident = expect_int(row.get("id", batch_id), method, path, "a batch id")
    text = lambda key: str(row[key]) if row.get(key) is not None else None  # noqa: E731
    return BatchStatus(
        ident,
        str(row.get("status")),
        bool(is_done),
        _optional_int(row.get("errorCount")) or 0,
        _optional_int(row.get("totalItems")),
        _optional_int(row.get("itemsCompleted")),
        text("correlationId"),
        text("message"),
        text("createdBy"),
    )


def _batch_error(row: dict) -> BatchError:
    message = str(row.get("errorMessage") or "")
    m = _ERROR_PREFIX.match(message)
    return BatchError(
        message, str(row.get("severity") or ""), int(m.group(1)) if m else None, message[m.end() :] if m else message
    )
