"""Which host a URL someone else chose names, and whether it may be a public DNS name at all.

Parsers disagree about hosts: a browser (WHATWG) reads `https://2130706433/`, `https://0x7f.1/` and
`https://0177.0.0.1/` as 127.0.0.1 where `ipaddress` reads no IP at all; `urlsplit` reads `https://a\\@b/` as host
`b` where WHATWG reads `a`; IDNA maps fullwidth digits and circled letters to ASCII. So the rule is strict rather
than clever: after IDNA, the host must be dot-separated DNS labels, at least two, the last not a number in any base,
and not a localhost name; userinfo, percent-escapes, brackets, backslashes and control characters are refused outright.
Pure parsing, no DNS: the fetch-time check (router.providers.download) still resolves and refuses non-public
addresses, and connects to exactly the address it checked.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from router.errors import InvalidRequest

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# WHATWG's "ends in a number": such a host is parsed as IPv4 (decimal, octal or hex parts), or is invalid.
_NUMBER = re.compile(r"^([0-9]+|0x[0-9a-f]*)$")
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class HostRefused(InvalidRequest, ValueError):
    """The URL's host is not a DNS name that could be public; the message says why."""


def public_dns_host(url: str) -> str:
    """The URL's host — lowercase, IDNA-encoded, no trailing dot — when it can only be a public DNS name."""
    if any(char == "\\" or char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        raise HostRefused("URL has a backslash, space or control character")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a port that isn't a number in range
    except ValueError as exc:
        raise HostRefused(f"unreadable URL: {exc}") from exc
    if "@" in parts.netloc:
        raise HostRefused("userinfo in URL is not allowed")
    if "%" in parts.netloc:
        raise HostRefused("percent-encoded host is not allowed")
    if "[" in parts.netloc or "]" in parts.netloc:
        raise HostRefused("IP literal host is not allowed; use a DNS name")
    host = parts.hostname or ""
    if not host:
        raise HostRefused("URL has no host")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise HostRefused(f"bad host name {host!r}") from exc
    host = host.removesuffix(".")
    labels = host.split(".")
    if _NUMBER.match(labels[-1]):
        raise HostRefused("IP literal host is not allowed; use a DNS name")
    if not all(_LABEL.match(label) for label in labels):
        raise HostRefused(f"host {host!r} is not a DNS name")
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        raise HostRefused("localhost is not allowed")
    if len(labels) < 2:
        raise HostRefused(f"host {host!r} is not a public DNS name")
    return host


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback address literal: the embedded stack's hosts, exempted from the public-host rules
    only where a caller says so."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
