"""The two vendors' error bodies, as API.md gives them: SEI's {code, message, trackingId, transient,
errors} and Orion's {message, correlationId}."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import JSONResponse

__all__ = ["orion_error", "sei_error"]


def sei_error(
    status: int,
    code: str,
    message: str,
    transient: Any = False,
    errors: list | None = None,
    headers: dict | None = None,
) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "trackingId": uuid.uuid4().hex,
            "transient": transient,
            "errors": errors or [],
        },
        status_code=status,
        headers=headers,
    )


def orion_error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"message": message, "correlationId": uuid.uuid4().hex}, status_code=status, headers=headers)
