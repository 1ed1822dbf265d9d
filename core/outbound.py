"""HTTP calls to URLs that users typed, kept out of the server's own network.

Webhook agents and alert channels send through here, so one set of rules
decides where such a call may go:

- The URL is parsed once, by the parser of the HTTP client that sends it
  (urllib3), and a URL other parsers could read differently is refused:
  backslashes, a user name or password, whitespace and control characters,
  anything not ASCII (a host must be in IDNA ``xn--`` form), a
  percent-escaped host.
- The host is resolved once, and every address it resolves to must be
  globally reachable, unless the host is listed in
  ``AGENT_WEBHOOK_ALLOWED_HOSTS``.
- The connection goes to an address that was checked, never to a new lookup
  of the name; the name is kept for the Host header, TLS SNI and certificate
  verification. So a DNS answer that changes between check and call cannot
  lead elsewhere.
- No redirects, no proxy from the environment, one deadline for the whole
  call, and at most ``max_body_bytes`` of the answer read.
"""

from __future__ import annotations

import ipaddress
import json as jsonlib
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

import certifi
from django.conf import settings
from urllib3 import BaseHTTPResponse, HTTPConnectionPool, HTTPHeaderDict, HTTPSConnectionPool
from urllib3.exceptions import (
    HTTPError,
    LocationParseError,
    NewConnectionError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import Timeout, parse_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048
DEFAULT_MAX_BODY_BYTES = 64 * 1024

# Anything but printable ASCII, and the backslash: urllib3 ends the host at a
# backslash, while other parsers (urllib.parse among them) read on to an "@".
_UNSAFE_CHARACTER = re.compile(r"[^\x21-\x7e]|\\")
_SCHEME_PREFIX = re.compile(r"(https?)://", re.IGNORECASE)
# Where urllib3's parser ends the authority, once backslashes are refused.
_AUTHORITY_END = re.compile(r"[/?#]")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,254}}$){_LABEL}(?:\.{_LABEL})*\.?")

# IANA lists this as not globally reachable, yet ipaddress' is_global does not
# exclude all of it in every Python version.
_IETF_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")
# All IANA has allocated for global unicast; outside it lie the reserved,
# local and multicast ranges, the IPv4-compatible and IPv4-translated forms
# among them, and local-use NAT64 (64:ff9b:1::/48).
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
# Well-known NAT64: the last 32 bits are the IPv4 address a translator reaches.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundError(Exception):
    """A call that was refused or failed, with a message meant for people."""


class DestinationRefused(OutboundError):
    """The URL, or an address its host resolves to, may not be called."""


class OutboundTimeout(OutboundError):
    """No complete answer within the call's timeout."""


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is globally reachable, so outside the server's own network."""
    # Some multicast ranges count as global.
    if ip.is_multicast or ip in _IETF_PROTOCOL_ASSIGNMENTS:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # Forms that deliver to an IPv4 address are judged by that address.
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip not in _GLOBAL_UNICAST:
            return False
        tunnelled_to = [ip.sixtofour, *(ip.teredo or ())]
        if not all(is_public_address(v4) for v4 in tunnelled_to if v4 is not None):
            return False
    return ip.is_global


@dataclass(frozen=True)
class HttpUrl:
    """An http(s) URL as the HTTP client reads it."""

    scheme: str
    host: str  # lower-case ASCII; an IPv6 address without brackets
    port: int
    target: str  # the path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse_http_url(url: str) -> HttpUrl:
    """Parse ``url`` as the HTTP client will, refusing what other parsers could read otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if _UNSAFE_CHARACTER.search(url):
        raise DestinationRefused(
            "The URL may hold only printable ASCII and no backslash: write the host "
            "in IDNA (xn--) form and percent-encode the rest."
        )
    prefix = _SCHEME_PREFIX.match(url)
    if prefix is None:
        raise DestinationRefused("An http:// or https:// URL.")
    authority = _AUTHORITY_END.split(url[prefix.end() :], maxsplit=1)[0]
    if "@" in authority:
        raise DestinationRefused(
            "A user name or password in the URL is not accepted; send credentials in headers."
        )
    if "%" in authority:
        raise DestinationRefused("The host may not be percent-encoded.")
    try:
        parsed = parse_url(url)
    except LocationParseError:
        raise DestinationRefused("Not a valid URL.") from None
    host = parsed.host or ""
    if not host:
        raise DestinationRefused("The URL has no host.")
    if host.startswith("["):
        # urllib3 has matched it as an IPv6 address, with no zone id (that
        # would need the "%" refused above).
        host = host[1:-1]
    elif not _HOST_NAME.fullmatch(host):
        raise DestinationRefused(f"{host!r} is not a valid host name.")
    if parsed.port == 0:
        raise DestinationRefused("Port 0 cannot be called.")
    scheme = prefix.group(1).lower()
    return HttpUrl(
        scheme=scheme,
        host=host,
        port=parsed.port or DEFAULT_PORTS[scheme],
        target=parsed.request_uri,
    )


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes  # at most the max_body_bytes asked for

    @property
    def text(self) -> str:
        message = Message()
        message["content-type"] = self.headers.get("content-type", "")
        try:
            return self.body.decode(message.get_content_charset() or "utf-8", "replace")
        except (LookupError, UnicodeError):
            # An unknown charset, or a codec that is not for text.
            return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class Destination:
    """A parsed URL and the checked addresses its host resolved to, in the resolver's order."""

    url: HttpUrl
    addresses: tuple[str, ...]

    def send(
        self,
        method: str,
        *,
        json: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> Response:
        """Call the destination at one of its checked addresses; ``timeout`` bounds the call.

        ``body`` is sent as it is (say, bytes that were signed); ``json`` is
        encoded here.
        """
        request_headers = HTTPHeaderDict(headers or {})
        request_headers.discard("host")
        request_headers["Host"] = self.url.host_header
        if json is not None:
            body = jsonlib.dumps(json).encode()
            request_headers.setdefault("Content-Type", "application/json")
        deadline = time.monotonic() + timeout
        for address in self.addresses:
            pool = self._pool(address)
            try:
                response = pool.urlopen(
                    method,
                    self.url.target,
                    body=body,
                    headers=request_headers,
                    # A redirect or a retry could lead past the checks.
                    redirect=False,
                    retries=False,
                    assert_same_host=False,
                    preload_content=False,
                    timeout=Timeout(total=max(deadline - time.monotonic(), 0.001)),
                )
                try:
                    content = _read_at_most(response, max_body_bytes, deadline)
                finally:
                    response.close()
                return Response(response.status, response.headers, content)
            except NewConnectionError:
                # Refused or unreachable: the next checked address may answer.
                continue
            except Urllib3Timeout:
                raise OutboundTimeout(f"No answer within {timeout:g} s.") from None
            except SSLError:
                raise OutboundError(
                    f"TLS with {self.url.host!r} failed (certificate or handshake)."
                ) from None
            except (HTTPError, OSError) as exc:
                raise OutboundError(f"The call failed ({exc.__class__.__name__}).") from None
            except ValueError:
                # http.client refuses a header or method with line breaks in it.
                raise OutboundError("A request header or the method is not valid.") from None
            finally:
                pool.close()
        raise OutboundError(f"Could not connect to {self.url.host!r} on port {self.url.port}.")

    def _pool(self, address: str) -> HTTPConnectionPool:
        if self.url.scheme == "https":
            name = self.url.host.rstrip(".")
            return HTTPSConnectionPool(
                address,
                self.url.port,
                maxsize=1,
                server_hostname=name,
                assert_hostname=name,
                cert_reqs="CERT_REQUIRED",
                ca_certs=certifi.where(),
            )
        return HTTPConnectionPool(address, self.url.port, maxsize=1)


def _is_allow_listed(host: str) -> bool:
    allowed = {
        name.lower().strip("[]").rstrip(".") for name in settings.AGENT_WEBHOOK_ALLOWED_HOSTS
    }
    return host.rstrip(".") in allowed


def resolve_destination(url: str) -> Destination:
    """Parse ``url`` and resolve its host once, checking every address it resolves to."""
    parsed = parse_http_url(url)
    try:
        infos = socket.getaddrinfo(parsed.host, parsed.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise DestinationRefused(f"Cannot resolve host {parsed.host!r}.") from None
    addresses = list(
        dict.fromkeys(
            # The scope of a link-local address says nothing about where it leads.
            ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            for info in infos
            if info[0] in (socket.AF_INET, socket.AF_INET6)
        )
    )
    if not addresses:
        raise DestinationRefused(f"Cannot resolve host {parsed.host!r}.")
    if not _is_allow_listed(parsed.host) and not all(map(is_public_address, addresses)):
        raise DestinationRefused(
            f"Host {parsed.host!r} resolves to an internal address; "
            "list it in AGENT_WEBHOOK_ALLOWED_HOSTS to allow it."
        )
    return Destination(parsed, tuple(str(address) for address in addresses))


def _read_at_most(response: BaseHTTPResponse, limit: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        # Checked between reads, so an answer that trickles in cannot hold the
        # call; raised as urllib3's own timeout to be reported as the others.
        if time.monotonic() > deadline:
            raise Urllib3Timeout("The answer did not arrive in time.")
        chunk = response.read1(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def send(
    method: str,
    url: str,
    *,
    json: Any = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Response:
    """Resolve and check ``url``, then call it; raises OutboundError."""
    return resolve_destination(url).send(
        method,
        json=json,
        body=body,
        headers=headers,
        timeout=timeout,
        max_body_bytes=max_body_bytes,
    )
