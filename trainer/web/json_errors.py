"""Request validation errors as JSON that always serialises: FastAPI's own handler echoes the bad input, and a JSON
body with `NaN` or `1e400` (which Python's parser reads as nan / inf) then fails to render (JSON has no such numbers),
turning a bad request into a 500. Here every error is a 422 with one readable line per problem in `detail` and the
structured list in `errors`, non-finite numbers written as text.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse


def json_safe(value: Any) -> Any:
    """`value` (JSON-like) with every non-finite float replaced by its name (`nan`, `inf`, `-inf`)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def describe(error: dict[str, Any]) -> str:
    """One line for one validation error: where, what, and the value given (non-finite numbers said plainly)."""
    where = ".".join(str(part) for part in error.get("loc", ())) or "request"
    line = f"{where}: {error.get('msg', 'invalid')}"
    if "input" in error and error.get("type") != "missing":
        given = error["input"]
        if isinstance(given, float) and not math.isfinite(given):
            return f"{line} (got {given!r}: give a finite number)"
        shown = repr(given)
        line += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
    return line


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """The 422 answer to a `RequestValidationError`, JSON-safe whatever the input."""
    errors = list(error.errors())
    return JSONResponse({"detail": "; ".join(describe(e) for e in errors),
                         "errors": json_safe(jsonable_encoder(errors))}, status_code=422)


def install(app: FastAPI) -> None:
    """Answer `app`'s request validation errors with `validation_error`."""
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
