"""The one way the ASGI guards answer a refused request: a JSON `{"detail": message}` like FastAPI's own errors."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send


async def refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    """Send `status` with `message` as the response to the request of `scope`."""
    await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)
