"""Fetch a remote image, connecting only to an address that was checked.

The URL is parsed once and its host spelled once (IDNA 2008 with UTS 46 mapping for non-ASCII
names); that spelling is resolved once, asynchronously; every address returned must be public
(unless private hosts are allowed); the connection then goes to one of those checked addresses by IP,
with the original name in the ``Host`` header and as the TLS server name (SNI and certificate check).
There is no second resolution for DNS rebinding to race, and no second IDNA spelling to disagree.

Redirects are not followed (the caller gets the target to use instead), proxies from the environment
are not used (they would resolve the name themselves), compressed transfer encodings are refused (a
small gzip body can expand without bound), and one deadline covers the connection, the headers and
the whole body: a server that drips a byte at a time is cut off when the deadline passes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import string
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx  # imported here, not on first use: a first import inside a request would hold the loop
import idna

from r3graph.errors import R3InputError

MAX_HOST_CHARS = 253
MAX_URL_CHARS = 8192  # what common servers accept in a request line
HOST_CHARS = set(string.ascii_lowercase + string.digits + "-_.")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the gateway would forward to the embedded IPv4 address

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class RemoteTarget:
    scheme: str  # http | https
    host: str  # ASCII, lower case, no brackets: the one spelling used for DNS, Host and SNI
    port: int
    target: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_remote_url(url: str, label: str) -> RemoteTarget:
    """An http(s) URL -> its parts, or R3InputError saying what is wrong with it."""
    if len(url) > MAX_URL_CHARS:
        raise R3InputError(f"{label}: the URL is {len(url)} characters; the limit is {MAX_URL_CHARS}")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise R3InputError(f"{label}: the URL contains spaces or control characters; percent-encode them")
    try:
        parts = urlsplit(url)
        port = parts.port
        raw_host = parts.hostname or ""
    except ValueError as exc:  # unterminated IPv6 bracket, port out of range or not a number
        raise R3InputError(f"{label}: malformed URL ({exc}): {url[:120]!r}") from exc
    if parts.username is not None or parts.password is not None:
        raise R3InputError(f"{label}: credentials in image URLs are not accepted (user:password@host)")
    if not raw_host:
        raise R3InputError(f"{label}: the URL has no host: {url[:120]!r}")
    host = _ascii_host(raw_host, label)
    scheme = parts.scheme.lower()
    if port == 0:
        raise R3InputError(f"{label}: port 0 is not a port to fetch from")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return RemoteTarget(scheme, host, port or (443 if scheme == "https" else 80), target)


def _ascii_host(raw: str, label: str) -> str:
    try:
        return str(ipaddress.ip_address(raw.split("%", 1)[0] if ":" in raw else raw))
    except ValueError:
        pass
    if ":" in raw:
        raise R3InputError(f"{label}: {raw[:80]!r} is not a valid IPv6 address")
    if raw.isascii():
        host = raw.lower().rstrip(".")
        if not host or not set(host) <= HOST_CHARS:
            raise R3InputError(f"{label}: the host name {raw[:80]!r} has characters a DNS name cannot have")
    else:
        try:
            host = idna.encode(raw, uts46=True, transitional=False).decode("ascii").rstrip(".")
        except (idna.IDNAError, UnicodeError) as exc:
            raise R3InputError(f"{label}: the host name {raw[:80]!r} is not a valid internationalised name ({exc})") \
                from exc
        try:
            return str(ipaddress.ip_address(host))  # e.g. full-width digits map to an IPv4 literal
        except ValueError:
            pass
    if len(host) > MAX_HOST_CHARS or any(not 1 <= len(part) <= 63 for part in host.split(".")):
        raise R3InputError(f"{label}: the host name {raw[:80]!r} is too long (a DNS label is 1 to 63 characters, "
                           f"a name at most {MAX_HOST_CHARS})")
    return host


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests replace this to fake DNS)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    """False for loopback, private, link-local, documentation, NAT64-to-private and other non-global
    addresses. IPv4-mapped IPv6 is judged by its IPv4 address (Python 3.11 gets that one wrong)."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


async def checked_addresses(target: RemoteTarget, *, allow_private: bool, label: str) -> list[str]:
    try:
        addresses = [target.host] if _is_ip(target.host) else await resolve(target.host, target.port)
    except (OSError, UnicodeError) as exc:
        raise R3InputError(f"{label}: cannot resolve host {target.host!r} ({exc})") from exc
    if not addresses:
        raise R3InputError(f"{label}: host {target.host!r} has no addresses")
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise R3InputError(
                f"{label}: refusing to fetch from non-public host {target.host!r} (it resolves to {refused[0]}); "
                "private hosts need allow_private_image_hosts=True"
            )
    return addresses


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def fetch_image(url: str, *, max_bytes: int, deadline: float, allow_private: bool, label: str) -> bytes:
    """GET ``url`` within ``deadline`` (``loop.time()`` seconds) and at most ``max_bytes`` bytes."""
    target = parse_remote_url(url, label)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(deadline):
            addresses = await checked_addresses(target, allow_private=allow_private, label=label)
            last_error: Exception | None = None
            for address in addresses:  # every one was checked; try them in the resolver's order
                try:
                    return await _download(target, address, max_bytes, deadline - loop.time(), label)
                except httpx.TransportError as exc:
                    last_error = exc
            raise R3InputError(f"{label}: could not fetch {url[:120]!r}: {last_error}")
    except TimeoutError as exc:
        raise R3InputError(
            f"{label}: fetching {url[:120]!r} did not finish in time (image_timeout_s, run_timeout_s)"
        ) from exc
    except httpx.HTTPError as exc:
        raise R3InputError(f"{label}: could not fetch {url[:120]!r}: {type(exc).__name__}: {exc}") from exc


_TLS: list[ssl.SSLContext] = []


def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every fetch. Building one loads the CA bundle (tens of ms of CPU),
    which httpx would otherwise do on the event loop for every client."""
    if not _TLS:
        import certifi

        _TLS.append(ssl.create_default_context(cafile=certifi.where()))
    return _TLS[0]


async def _download(target: RemoteTarget, address: str, max_bytes: int, timeout_s: float, label: str) -> bytes:
    # Plain http needs no TLS context (httpx would build one, loading the CA bundle, on the loop).
    tls: ssl.SSLContext | bool = False
    if target.scheme == "https":
        tls = _TLS[0] if _TLS else await asyncio.to_thread(_tls_context)

    host = f"[{address}]" if ":" in address else address
    url = f"{target.scheme}://{host}:{target.port}{target.target}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    headers = {"Host": target.host_header, "Accept": "image/*", "Accept-Encoding": "identity"}
    async with httpx.AsyncClient(timeout=max(timeout_s, 0.001), follow_redirects=False, trust_env=False,
                                 verify=tls) as client:
        request = client.build_request("GET", url, headers=headers, extensions=extensions)
        response = await client.send(request, stream=True)
        try:
            if response.is_redirect:
                location = response.headers.get("location", "")
                raise R3InputError(f"{label}: the server redirects to {location[:120]!r}; redirects are not "
                                   "followed, use the final URL")
            if response.status_code != 200:
                raise R3InputError(f"{label}: the server answered HTTP {response.status_code}")
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise R3InputError(f"{label}: the server sent a {encoding!r}-compressed body; images are "
                                   "fetched uncompressed")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise R3InputError(f"{label}: remote image is {declared} bytes; the limit is {max_bytes} "
                                   "(max_image_bytes)")
            chunks, size = [], 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > max_bytes:
                    raise R3InputError(f"{label}: remote image exceeds {max_bytes} bytes (max_image_bytes)")
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            await response.aclose()
