"""Allowed `Host` headers: a DNS-rebinding page (attacker.example resolving to 127.0.0.1) reaches a local server with
its own name in `Host`, so a server answers only the names it was bound to or told about.

By default the allowed names are the bound address, plus the loopback names when it is a loopback or wildcard address
(`127.0.0.1`, `localhost`, `::1`); `--allowed-host NAME` adds one (`*` allows any, turning the check off).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ifcn.trainer.web.responses import refuse

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
ANY_HOST = "*"


def host_name(value: str) -> str:
    """The name of a `Host` header value (or a bind address) without its port or IPv6 brackets, lower-case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # a name, or a bare IPv6 address


def _is_local_or_wildcard(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names a server bound to `bind` answers: `bind` itself (loopback names too when it is a loopback or
    wildcard address) and each of `extra`."""
    names = {host_name(bind), *(host_name(e) for e in extra if e.strip())}
    if _is_local_or_wildcard(host_name(bind)):
        names.update(LOOPBACK_NAMES)
    return frozenset(names)


class AllowedHostsMiddleware:
    """Answer 400 with a message naming `flag` to a request whose `Host` is not allowed."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str], flag: str = "--allowed-host") -> None:
        self.app = app
        self.hosts = frozenset(host_name(h) for h in hosts)
        self.flag = flag

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and ANY_HOST not in self.hosts:
            given = host_name(Headers(scope=scope).get("host", ""))
            if given not in self.hosts:
                await refuse(scope, receive, send, 400,
                             f"this server does not answer to the host name {given!r} (it answers "
                             f"{', '.join(sorted(self.hosts))}); open it by one of those names, or restart it "
                             f"with {self.flag} {given or 'NAME'}")
                return
        await self.app(scope, receive, send)
