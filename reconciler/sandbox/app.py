"""The sandbox's HTTP face: Orion under /api, SEI at the root, controls under /_sandbox (starlette).

Follows API.md: Session/Bearer+AppKey auth with token minting, the batch workflow, cursor paging,
409 on duplicate tickets, SEI's error body. A pure-ASGI middleware counts requests, moves batches
along the clock and injects faults, including the nastiest: act on a write, start the answer, then
drop the connection, so a client sees neither success nor failure.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from reconciler.sandbox.contract import BATCH_LIMIT, PAGE_LIMIT, READ_CHUNK, shape_problems
from reconciler.sandbox.faults import FaultBook, parse_faults
from reconciler.sandbox.middleware import FaultMiddleware
from reconciler.sandbox.state import SandboxState
from reconciler.sandbox.vendor_errors import orion_error, sei_error

__all__ = ["DEMO_CREDENTIALS", "SandboxCredentials", "create_app"]

SEI_DEFAULT_PAGE = 100


@dataclass
class SandboxCredentials:
    orion_token: str
    sei_token: str
    sei_app_key: str
    orion_username: str = "demo-user"
    orion_password: str = "demo-password"
    sei_app_secret: str = "demo-app-secret"
    sei_username: str = "demo-user"
    sei_password: str = "demo-password"
    sei_token_ttl: float = 3600.0
    sei_idle_ttl: float = 1800.0
    minted_orion: set[str] = field(default_factory=set)
    minted_sei: dict[str, float] = field(default_factory=dict)
    sei_last_used: dict[str, float] = field(default_factory=dict)
    revoked_sei: list[str] = field(default_factory=list)


# Printed by `reconciler sandbox` when no credentials are given, and named in the README.
DEMO_CREDENTIALS = {"ORION_TOKEN": "demo-orion-token", "SEI_TOKEN": "demo-sei-token", "SEI_APP_KEY": "demo-app-key"}


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    import datetime as dt

    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def create_app(state: SandboxState, creds: SandboxCredentials, faults: FaultBook | None = None) -> FaultMiddleware:
    faults = faults or FaultBook()

    # --- auth -------------------------------------------------------------------------------------

    def orion_user(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme != "Session" or not token:
            return None
        if secrets.compare_digest(token, creds.orion_token) or token in creds.minted_orion:
            return creds.orion_username
        return None

    def sei_refusal(request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if request.headers.get("appkey") != creds.sei_app_key:  # fatal: the app has no access here [docs]
            return sei_error(401, "gateway.authentication.failure", "Invalid ApiKey for given resource")
        if scheme != "Bearer" or not token:
            return sei_error(401, "gateway.authentication.failure", "Missing Access Token")
        if secrets.compare_digest(token, creds.sei_token):
            return None
        expiry = creds.minted_sei.get(token)
        now = time.monotonic()
        last = creds.sei_last_used.get(token, now)
        # tokens live 60 minutes, and die after 30 minutes without use [docs]
        if expiry is None or now > expiry or now - last > creds.sei_idle_ttl:
            creds.minted_sei.pop(token, None)
            return sei_error(401, "gateway.authentication.failure", "Access Token expired")
        creds.sei_last_used[token] = now
        return None

    def basic(request: Request) -> tuple[str, str] | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme != "Basic":
            return None
        try:
            user, _, pw = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, pw

    async def body_json(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            return _Invalid()

    def orion(handler):
        async def wrapped(request: Request) -> Response:
            user = orion_user(request)
            if user is None:
                return orion_error(401, "Authorization has been denied for this request.")
            return await handler(request, user)

        return wrapped

    def sei(handler):
        async def wrapped(request: Request) -> Response:
            refusal = sei_refusal(request)
            return refusal if refusal is not None else await handler(request)

        return wrapped

    # --- Orion ------------------------------------------------------------------------------------

    async def orion_token(request: Request) -> Response:
        if basic(request) != (creds.orion_username, creds.orion_password):
            return orion_error(401, "Invalid username or password.")
        token = secrets.token_urlsafe(24)
        creds.minted_orion.add(token)
        return JSONResponse({"access_token": token, "expires_in": 36000})

    async def list_registrations(request: Request, user: str) -> Response:
        return JSONResponse(state.summaries())

    async def get_registration(request: Request, user: str) -> Response:
        reg = state.get(request.path_params["rid"])
        if reg is None:
            return orion_error(404, f"Registration {request.path_params['rid']} was not found.")
        if request.query_params.get("includeAssets", "true").lower() == "false":
            for s in reg.get("accountSleeves") or []:
                s["assets"] = []
        return JSONResponse(reg)

    async def bulk_read(request: Request, user: str) -> Response:
        ids = await body_json(request)
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            return orion_error(400, "The body must be a JSON array of registration ids.")
        if len(ids) > READ_CHUNK:
            return orion_error(400, f"At most {READ_CHUNK} registration ids per request.")
        return JSONResponse(state.list_with_sleeves(ids))

    async def histories(request: Request, user: str) -> Response:
        rid = request.path_params["rid"]
        if state.get(rid) is None:
            return orion_error(404, f"Registration {rid} was not found.")
        with state.lock:
            return JSONResponse(list(state.histories.get(rid, [])))

    async def validate(request: Request, user: str) -> Response:
        body = await body_json(request)
        if not isinstance(body, dict):
            return orion_error(400, "The body must be one registration object.")
        if shape_problems(body):
            return orion_error(400, "; ".join(shape_problems(body)))
        return JSONResponse(state.validate({**body, "registrationId": request.path_params["rid"]}))

    async def submit_batch(request: Request, user: str) -> Response:
        items = await body_json(request)
        if not isinstance(items, list) or not items:
            return orion_error(400, "The body must be a non-empty JSON array of registrations.")
        if len(items) > BATCH_LIMIT:
            return orion_error(400, f"A batch holds at most {BATCH_LIMIT} registrations.")
        if not all(isinstance(i, dict) and isinstance(i.get("registrationId"), int) for i in items):
            return orion_error(400, "Every item must be a registration object with a registrationId.")
        shapes = [f"registration {i['registrationId']}: {p}" for i in items for p in shape_problems(i)]
        if shapes:
            return orion_error(400, "; ".join(shapes))
        stuck = faults.take("POST", request.url.path, ("stuck",)) is not None
        rejected = frozenset(int(f.arg) for f in faults.peek_all("POST", request.url.path, "reject") if f.arg)
        batch_id = state.submit_batch(items, user, stuck=stuck, rejected=rejected)
        return PlainTextResponse(str(batch_id))

    async def batch_status(request: Request, user: str) -> Response:
        status = state.batch_status(request.path_params["bid"])
        return orion_error(404, "Batch not found.") if status is None else JSONResponse(status)

    async def list_batches(request: Request, user: str) -> Response:
        q = request.query_params
        try:
            start = _epoch(q.get("startDate"))
            end = _epoch(q.get("endDate"))
        except ValueError:
            return orion_error(400, "startDate and endDate must be ISO 8601 dates.")
        return JSONResponse(state.list_batches(start, end, q.get("status")))

    async def batch_errors(request: Request, user: str) -> Response:
        errors = state.batch_errors(request.path_params["bid"])
        return orion_error(404, "Batch not found.") if errors is None else JSONResponse(errors)

    # --- SEI --------------------------------------------------------------------------------------

    async def sei_token(request: Request) -> Response:
        # urlencoded by the spec; parsed here rather than with starlette's form parser (python-multipart)
        form = {k: v[0] for k, v in urllib.parse.parse_qs((await request.body()).decode(errors="replace")).items()}
        if basic(request) != (creds.sei_app_key, creds.sei_app_secret):
            return sei_error(401, "gateway.authentication.failure", "Invalid client credentials")
        if form.get("grant_type") == "invalidate_token":  # revokes one token [docs]
            revoked = form.get("token") or ""
            creds.minted_sei.pop(revoked, None)
            creds.revoked_sei.append(revoked)
            return JSONResponse({"status": "revoked"})
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("username") != creds.sei_username
            or form.get("password") != creds.sei_password
        ):
            return sei_error(401, "gateway.authentication.failure", "Invalid username or password")
        token = secrets.token_urlsafe(24)
        creds.minted_sei[token] = time.monotonic() + creds.sei_token_ttl
        creds.sei_last_used[token] = time.monotonic()
        return JSONResponse({"access_token": token, "expires_in": int(creds.sei_token_ttl), "token_type": "Bearer"})

    async def list_tickets(request: Request) -> Response:
        q = request.query_params
        try:
            limit = int(q.get("limit") or SEI_DEFAULT_PAGE)
            ticket_id = int(q["id"]) if q.get("id") else None
            cursor = int(base64.urlsafe_b64decode(q["cursor"]).decode()) if q.get("cursor") else 0
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return sei_error(
                400,
                "request.invalid",
                "id, limit and cursor must be valid",
                errors=[{"field": "query", "location": "query", "reason": "invalid"}],
            )
        if not 1 <= limit <= PAGE_LIMIT:
            return sei_error(
                400,
                "request.invalid",
                f"limit must be between 1 and {PAGE_LIMIT}",
                errors=[{"field": "limit", "location": "query", "reason": "out of range"}],
            )
        rows, total, nxt = state.tickets_page(ticket_id, q.get("status"), limit, cursor)
        prev = base64.urlsafe_b64encode(str(max(0, cursor - limit)).encode()).decode() if cursor else None
        return JSONResponse(
            {
                "data": rows,
                "paging": {
                    "totalCount": total,
                    "limit": limit,
                    "previous": prev,
                    "next": base64.urlsafe_b64encode(str(nxt).encode()).decode() if nxt is not None else None,
                },
            }
        )

    async def post_ticket(request: Request) -> Response:
        body = await body_json(request)
        data = body.get("data") if isinstance(body, dict) else None
        problems = state.ticket_problems(data)
        if problems or not isinstance(data, dict):
            return sei_error(
                400, "request.invalid", "The trade instruction is invalid", transient="false", errors=problems
            )
        row = state.add_ticket(data)
        if row is None:
            return sei_error(
                409, "resource.conflict", f"tradeTicketId {data['tradeTicketId']} already exists", transient=False
            )
        return JSONResponse({"data": row})

    # --- sandbox controls -------------------------------------------------------------------------

    async def counters(request: Request) -> Response:
        with state.lock:
            counts = dict(state.counters)
        return JSONResponse(
            {
                "requests": counts,
                "total": sum(counts.values()),
                "held": faults.held,
                "writes": sum(
                    v
                    for k, v in counts.items()
                    if k.startswith(("POST /api/v1/Trading/Sleeve/Registrations/Action", "POST /v1/order"))
                ),
            }
        )

    async def reset_counters(request: Request) -> Response:
        with state.lock:
            state.counters.clear()
            state.writes.clear()
        return JSONResponse({"ok": True})

    async def writes(request: Request) -> Response:
        with state.lock:
            return JSONResponse(list(state.writes))

    async def get_state(request: Request) -> Response:
        return JSONResponse(state.to_json())

    async def put_state(request: Request) -> Response:
        data = await body_json(request)
        if not isinstance(data, dict):
            return JSONResponse({"error": "expected {registrations, tickets, histories}"}, status_code=400)
        state.replace(data)
        return JSONResponse({"registrations": len(state.registrations), "tickets": len(state.tickets)})

    async def edit_registration(request: Request) -> Response:
        patch = await body_json(request)
        if not isinstance(patch, dict):
            return JSONResponse({"error": "expected {editedBy, set, sleeves}"}, status_code=400)
        reg = state.edit_outside_git(request.path_params["rid"], patch, str(patch.get("editedBy") or "ui-user"))
        return JSONResponse(reg) if reg else JSONResponse({"error": "no such registration"}, status_code=404)

    async def add_tickets(request: Request) -> Response:
        body = await body_json(request)
        rows = body.get("rows") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            return JSONResponse({"error": "expected {rows: [...]}"}, status_code=400)
        return JSONResponse({"tickets": state.add_rows(rows)})

    async def ticket_count(request: Request) -> Response:
        tid = request.path_params["tid"]
        with state.lock:
            posts = state.ticket_posts.get(tid, 0)
        return JSONResponse({"rows": state.ticket_count(tid), "posts": posts})

    async def faults_endpoint(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(faults.describe())
        if request.method == "DELETE":
            faults.set([])
            return JSONResponse([])
        raw = await request.body()
        try:
            spec = json.loads(raw) if raw.strip().startswith((b"[", b'"')) else raw.decode()
            parsed = parse_faults(spec)
        except (ValueError, TypeError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        (faults.add if request.method == "POST" else faults.set)(parsed)
        return JSONResponse(faults.describe())

    async def release(request: Request) -> Response:
        return JSONResponse({"released": state.release_stuck(float(request.query_params.get("after", 0)))})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    regs = "/api/v1/Trading/Sleeve/Registrations"
    routes = [
        Route("/api/v1/Security/Token", orion_token, methods=["GET"]),
        Route(regs, orion(list_registrations), methods=["GET"]),
        Route(f"{regs}/ListWithAccountSleeves", orion(bulk_read), methods=["POST"]),
        Route(f"{regs}/Action/process/batch", orion(submit_batch), methods=["POST"]),
        Route(f"{regs}/{{rid:int}}", orion(get_registration), methods=["GET"]),
        Route(f"{regs}/{{rid:int}}/Histories", orion(histories), methods=["GET"]),
        Route(f"{regs}/{{rid:int}}/Validate", orion(validate), methods=["PUT"]),
        Route("/api/v1/Utility/BatchProcessing", orion(list_batches), methods=["GET"]),
        Route("/api/v1/Utility/BatchProcessing/{bid:int}", orion(batch_status), methods=["GET"]),
        Route("/api/v1/Utility/BatchProcessing/{bid:int}/Errors", orion(batch_errors), methods=["GET"]),
        Route("/v2/oauthtoken", sei_token, methods=["POST"]),
        Route("/v1/order/tradetickets", sei(list_tickets), methods=["GET"]),
        Route("/v1/order/tradetickets", sei(post_ticket), methods=["POST"]),
        Route("/_sandbox/health", health, methods=["GET"]),
        Route("/_sandbox/counters", counters, methods=["GET"]),
        Route("/_sandbox/counters/reset", reset_counters, methods=["POST"]),
        Route("/_sandbox/writes", writes, methods=["GET"]),
        Route("/_sandbox/state", get_state, methods=["GET"]),
        Route("/_sandbox/state", put_state, methods=["PUT"]),
        Route("/_sandbox/registrations/{rid:int}", edit_registration, methods=["PATCH"]),
        Route("/_sandbox/tickets", add_tickets, methods=["POST"]),
        Route("/_sandbox/tickets/{tid:int}/count", ticket_count, methods=["GET"]),
        Route("/_sandbox/faults", faults_endpoint, methods=["GET", "PUT", "POST", "DELETE"]),
        Route("/_sandbox/batches/release", release, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = state
    app.state.faults = faults
    return FaultMiddleware(app, state, faults)


class _Invalid:
    """A body that was not JSON: fails every isinstance check in the handlers."""
