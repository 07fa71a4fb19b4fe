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
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from reconciler.sandbox.contract import cursor_offset, encode_cursor, parse_instant
from reconciler.sandbox.faults import FaultBook, parse_faults
from reconciler.sandbox.middleware import FaultMiddleware
from reconciler.sandbox.openapi import Checked, Description, Operation, Problem, description
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


def _orion_bad_request(problems: Iterable[Problem]) -> Response:
    return orion_error(400, "The request is invalid. " + "; ".join(map(str, problems)))


def _sei_bad_request(problems: Iterable[Problem]) -> Response:
    errors = [{"field": p.field or p.location, "location": p.location, "reason": p.reason} for p in problems]
    return sei_error(400, "request.invalid", "The request is invalid", transient="false", errors=errors)


async def _not_routed(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in the vendor's own error body (JSON), never as plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else None
    if request.url.path.startswith("/api/"):
        return orion_error(status, "No HTTP resource was found that matches the request URI.", headers=headers)
    return sei_error(
        status, "resource.notfound" if status == 404 else "method.notallowed", "No such route", headers=headers
    )


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

    # --- every vendor route: credentials, then the published description, then the handler ----------

    def credentials_refusal(op: Operation, request: Request) -> Response | None:
        """What the operation's security requirement says of the caller; None when it may go on."""
        if "session" in op.security and orion_user(request) is None:
            return orion_error(401, "Authorization has been denied for this request.")
        if "bearer" in op.security:
            return sei_refusal(request)
        return None  # Basic-secured token routes check their credentials themselves

    def vendor_routes(prefix: str, desc: Description, handlers: dict[str, Any], refuse) -> list[Route]:
        """One Route per path of the description; a request breaking it gets the vendor's 400 and never
        reaches the handler, which receives the typed parameters and the parsed body instead."""
        routes, integers = [], desc.integer_path_params
        for path in desc.paths():
            by_method = {m: handlers[f"{m} {path}"] for m in desc.methods(path)}

            async def endpoint(request: Request, path: str = path, by_method: dict = by_method) -> Response:
                method = "GET" if request.method == "HEAD" else request.method  # starlette answers HEAD as GET
                op = desc.operation(method, path)
                refusal = credentials_refusal(op, request)
                if refusal is not None:
                    return refusal
                checked = op.check(request.path_params, request.query_params.multi_items(), await request.body())
                if checked.problems:
                    return refuse(checked.problems)
                return await by_method[method](request, checked)

            # integer path parameters match digits only, as an ASP.NET route's {id:int} does: a word there
            # is another route (…/ListWithAccountSleeves) or no route at all (404), never a bad id
            routed = re.sub(r"\{(\w+)\}", lambda m: f"{{{m[1]}:int}}" if m[1] in integers else m[0], path)
            routes.append(Route(prefix + routed, endpoint, methods=list(by_method)))
        return routes

    # --- Orion ------------------------------------------------------------------------------------

    async def orion_token(request: Request, call: Checked) -> Response:
        if basic(request) != (creds.orion_username, creds.orion_password):
            return orion_error(401, "Invalid username or password.")
        token = secrets.token_urlsafe(24)
        creds.minted_orion.add(token)
        return JSONResponse({"access_token": token, "expires_in": 36000})

    async def list_registrations(request: Request, call: Checked) -> Response:
        return JSONResponse(state.summaries())

    async def get_registration(request: Request, call: Checked) -> Response:
        rid = call.params["registrationId"]
        reg = state.get(rid)
        if reg is None:
            return orion_error(404, f"Registration {rid} was not found.")
        if call.params.get("includeAssets") is False:
            for s in reg.get("accountSleeves") or []:
                s["assets"] = []
        return JSONResponse(reg)

    async def bulk_read(request: Request, call: Checked) -> Response:
        return JSONResponse(state.list_with_sleeves(call.body))

    async def histories(request: Request, call: Checked) -> Response:
        rid = call.params["registrationId"]
        if state.get(rid) is None:
            return orion_error(404, f"Registration {rid} was not found.")
        with state.lock:
            return JSONResponse(list(state.histories.get(rid, [])))

    async def validate(request: Request, call: Checked) -> Response:
        return JSONResponse(state.validate({**call.body, "registrationId": call.params["registrationId"]}))

    async def submit_batch(request: Request, call: Checked) -> Response:
        stuck = faults.take("POST", request.url.path, ("stuck",)) is not None
        rejected = frozenset(int(f.arg) for f in faults.peek_all("POST", request.url.path, "reject") if f.arg)
        batch_id = state.submit_batch(call.body, creds.orion_username, stuck=stuck, rejected=rejected)
        return PlainTextResponse(str(batch_id))

    async def batch_status(request: Request, call: Checked) -> Response:
        status = state.batch_status(call.params["batchId"])
        return orion_error(404, "Batch not found.") if status is None else JSONResponse(status)

    async def list_batches(request: Request, call: Checked) -> Response:
        q = call.params
        start, end = parse_instant(q.get("startDate")), parse_instant(q.get("endDate"))
        return JSONResponse(state.list_batches(start, end, q.get("status")))

    async def batch_errors(request: Request, call: Checked) -> Response:
        errors = state.batch_errors(call.params["batchId"])
        return orion_error(404, "Batch not found.") if errors is None else JSONResponse(errors)

    # --- SEI --------------------------------------------------------------------------------------

    async def sei_token(request: Request, call: Checked) -> Response:
        form = call.body or {}
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

    async def list_tickets(request: Request, call: Checked) -> Response:
        q = call.params
        limit = q.get("limit", SEI_DEFAULT_PAGE)
        cursor = cursor_offset(q.get("cursor")) or 0
        rows, total, nxt = state.tickets_page(q.get("id"), q.get("status"), limit, cursor)
        return JSONResponse(
            {
                "data": rows,
                "paging": {
                    "totalCount": total,
                    "limit": limit,
                    "previous": encode_cursor(max(0, cursor - limit)) if cursor else None,
                    "next": encode_cursor(nxt) if nxt is not None else None,
                },
            }
        )

    async def post_ticket(request: Request, call: Checked) -> Response:
        data = call.body["data"]
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

    regs = "/v1/Trading/Sleeve/Registrations"
    batches = "/v1/Utility/BatchProcessing"
    orion_handlers = {
        "GET /v1/Security/Token": orion_token,
        f"GET {regs}": list_registrations,
        f"POST {regs}/ListWithAccountSleeves": bulk_read,
        f"POST {regs}/Action/process/batch": submit_batch,
        f"GET {regs}/{{registrationId}}": get_registration,
        f"GET {regs}/{{registrationId}}/Histories": histories,
        f"PUT {regs}/{{registrationId}}/Validate": validate,
        f"GET {batches}": list_batches,
        f"GET {batches}/{{batchId}}": batch_status,
        f"GET {batches}/{{batchId}}/Errors": batch_errors,
    }
    sei_handlers = {
        "POST /v2/oauthtoken": sei_token,
        "GET /v1/order/tradetickets": list_tickets,
        "POST /v1/order/tradetickets": post_ticket,
    }
    routes = [
        *vendor_routes("/api", description("orion.openapi.yaml"), orion_handlers, _orion_bad_request),
        *vendor_routes("", description("sei.openapi.yaml"), sei_handlers, _sei_bad_request),
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
    app = Starlette(routes=routes, exception_handlers={404: _not_routed, 405: _not_routed})
    app.state.sandbox = state
    app.state.faults = faults
    return FaultMiddleware(app, state, faults)


class _Invalid:
    """A body that was not JSON: fails every isinstance check in the handlers."""
