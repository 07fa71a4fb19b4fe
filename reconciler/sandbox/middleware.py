"""The sandbox's fault injection, as ASGI middleware: 429/5xx with Retry-After, answers dropped
mid-way, slow or garbled answers, and servers that commit after the client gave up (`late`)."""

from __future__ import annotations

import asyncio
import logging
import time

from reconciler.sandbox.faults import FaultBook
from reconciler.sandbox.state import SandboxState
from reconciler.sandbox.vendor_errors import orion_error, sei_error

__all__ = ["FaultMiddleware"]


class _Dropped(Exception):
    """Raised after the response started: uvicorn then closes the connection mid-answer."""


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Dropped))


logging.getLogger("uvicorn.error").addFilter(_DropFilter())


class FaultMiddleware:
    def __init__(self, app, state: SandboxState, faults: FaultBook):
        self.app, self.state, self.faults = app, state, faults

    async def _late(self, fault, scope, receive, send) -> None:
        """Hold the request past the client's time-out, then act on it: a server that commits after
        the client gave up. The body is read first, so the write is complete whatever the client does."""
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.faults.holding(+1)
        try:
            await asyncio.sleep(float(fault.arg or 3.0))
            self.state.advance()

            async def send_if_still_there(message):
                try:
                    await send(message)
                except Exception:  # the client is gone; the write was processed all the same
                    pass

            await self.app(scope, _replay(body), send_if_still_there)
        finally:
            self.faults.holding(-1)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        self.state.count(f"{method} {path}")
        self.state.advance()
        fault = self.faults.take(method, path, ("429", "503", "500", "502"))
        if fault is not None:
            headers = {}
            if fault.kind in ("429", "503") and fault.arg != "none":  # 503=none: no Retry-After, outcome unknown
                headers["Retry-After"] = _retry_after(fault.arg)
            maker = (
                orion_error
                if path.startswith("/api/")
                else (
                    lambda s, m, headers=None: sei_error(
                        s, "gateway.throttled" if s == 429 else "server.error", m, transient="true", headers=headers
                    )
                )
            )
            return await maker(int(fault.kind), f"sandbox fault {fault.kind}", headers=headers)(scope, receive, send)
        late = self.faults.take(method, path, ("late",))
        if late is not None:
            return await self._late(late, scope, receive, send)
        drop = self.faults.take(method, path, ("drop",))
        slow = self.faults.take(method, path, ("slow",))
        garble = self.faults.take(method, path, ("garble",))
        held: list[dict] = []
        if slow is not None:
            self.faults.holding(+1)

        async def send_wrapper(message):
            if garble is not None:  # act, then answer 200 with a body the client cannot read
                if message["type"] == "http.response.start":
                    held.append(message)
                    return
                if message.get("more_body"):
                    return
                body = b'"not the shape this call returns"' if garble.arg == "json" else b"<html><body>OK</body></html>"
                start = held[0]
                headers = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-length", b"content-type")]
                headers += [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json" if garble.arg == "json" else b"text/html"),
                ]
                await send({**start, "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            if message["type"] == "http.response.start":
                if slow is not None:
                    await asyncio.sleep(float(slow.arg or 1.0))
                await send(message)
                if drop is not None:
                    raise _Dropped()
                return
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if slow is not None:
                self.faults.holding(-1)


async def _ignore(message) -> None:
    return None


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # nothing more will come
        return {"type": "http.disconnect"}

    return receive


def _retry_after(arg: str | None) -> str:
    if arg == "date":
        import email.utils

        return email.utils.formatdate(time.time() + 1.5, usegmt=True)
    return str(arg or 1)
