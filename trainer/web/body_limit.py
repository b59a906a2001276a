"""A request body limit enforced while the body arrives, before any endpoint or form parser sees it.

FastAPI parses a multipart upload completely (spooling it to a temporary file) before the endpoint runs, so a limit
checked there comes after the whole body is on disk. This middleware refuses a declared `Content-Length` over the limit
without reading a byte, and stops reading a chunked body as soon as it passes the limit: at most `max_bytes` plus one
chunk is ever received.
"""

from __future__ import annotations

import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ifcn.trainer.web.responses import refuse


class BodyTooLarge(Exception):
    """Raised into the app by `receive` once the body passes the limit; the middleware answers 413 instead."""


class BodyLimitMiddleware:
    """Answer 413 with `message` to any HTTP request whose body is larger than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int, message: str) -> None:
        if max_bytes < 0:
            raise ValueError(f"the body limit must not be negative, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await refuse(scope, receive, send, 413, self.message)
            return
        received = 0
        exceeded = started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's own answer to the cut body (a parse error) is replaced by the 413 below
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if exceeded and not started:
            await refuse(scope, receive, send, 413, self.message)
