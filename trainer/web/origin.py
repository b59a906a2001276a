"""Same-origin check for state-changing requests: a page of another site may make a visitor's browser POST to a
local server (a form or `fetch` upload), and browsers send that page's `Origin` with it. Requests that change state
(any method but GET, HEAD, OPTIONS) are refused when their `Origin`, or `Sec-Fetch-Site`, says they come from
elsewhere; tools without a browser (curl, scripts) send neither header and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ifcn.trainer.web.responses import refuse

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: `Sec-Fetch-Site` values of requests a page of the server itself (or the user, typing the URL) makes.
SAME_SITE_FETCH = frozenset({"same-origin", "none"})


def is_cross_origin(headers: Headers) -> bool:
    """Whether a request's headers show it was sent by a page of another origin than its own `Host`."""
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        return True  # includes "null" (sandboxed frames, file:// pages)
    fetch_site = headers.get("sec-fetch-site")
    return fetch_site is not None and fetch_site not in SAME_SITE_FETCH


class SameOriginMiddleware:
    """Answer 403 to a state-changing HTTP request sent from a page of another origin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = Headers(scope=scope)
            if is_cross_origin(headers):
                await refuse(scope, receive, send, 403,
                             f"cross-origin {scope['method']} refused (Origin {headers.get('origin')!r}, "
                             f"Host {headers.get('host')!r}): use the page this server serves, or a client "
                             "that sends no Origin header (curl, scripts)")
                return
        await self.app(scope, receive, send)
