"""Remote fetches connect only to the address that was checked, with the original name as Host and SNI.

DNS is faked by patching :func:`r3graph.image_fetch.resolve`; the servers are on 127.0.0.1 (a test
CA signs the TLS server's certificate for the fake name, so the name is really verified).
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from r3graph import R3InputError
from r3graph.image_fetch import fetch_image
from r3graph.images import normalise_images
from tests.reliability.image_host import GOOD_PNG, PUBLIC, FakeDNS, ImageHost

ALLOW = {"allow_remote_images": True, "allow_private_image_hosts": True}


class FlippingDNS(FakeDNS):
    """Answers ``first`` to the first query for a name and ``then`` afterwards (DNS rebinding)."""

    def __init__(self, name: str, first: list[str], then: list[str]) -> None:
        super().__init__()
        self.name, self.first, self.then = name, first, then

    async def resolve(self, host: str, port: int) -> list[str]:
        self.queries.append(host)
        if host == self.name:
            return self.first if self.queries.count(host) == 1 else self.then
        return await super().resolve(host, port)


@pytest.fixture
def host() -> Iterator[ImageHost]:
    with ImageHost() as server:
        yield server


def deadline(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_the_connection_goes_to_the_checked_address_with_the_original_host(
    host: ImageHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    # First answer loopback (allowed here), then an unroutable address: a second lookup would fail.
    dns = FlippingDNS("imghost.test", ["127.0.0.1"], ["10.255.255.1"])
    monkeypatch.setattr("r3graph.image_fetch.resolve", dns.resolve)
    data = await fetch_image(f"http://imghost.test:{host.port}/ok.png", max_bytes=2**20, deadline=deadline(),
                             allow_private=True, label="images[0]")
    assert data == GOOD_PNG
    assert dns.queries == ["imghost.test"]  # resolved once
    assert host.hosts == [f"imghost.test:{host.port}"]  # the name travelled as Host, the IP was dialled


async def test_a_rebinding_name_is_dialled_at_the_public_address_it_was_checked_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dns = FlippingDNS("rebind.test", [PUBLIC], ["127.0.0.1"])
    monkeypatch.setattr("r3graph.image_fetch.resolve", dns.resolve)
    dialled: list[str] = []

    async def download(target: object, address: str, *args: object) -> bytes:
        dialled.append(address)  # no real connection: the address is public
        return GOOD_PNG

    monkeypatch.setattr("r3graph.image_fetch._download", download)
    await fetch_image("http://rebind.test/x.png", max_bytes=2**20, deadline=deadline(), allow_private=False,
                      label="images[0]")
    assert dialled == [PUBLIC] and dns.queries == ["rebind.test"]


async def test_an_international_name_is_spelt_once_for_dns_and_host(
    host: ImageHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns = FakeDNS({"xn--bcher-kva.test": ["127.0.0.1"]})
    monkeypatch.setattr("r3graph.image_fetch.resolve", dns.resolve)
    urls = await normalise_images([f"http://B\u00dcCHER.test:{host.port}/ok.png"], ALLOW)
    assert urls[0].startswith("data:image/png;base64,")
    assert dns.queries == ["xn--bcher-kva.test"] and host.hosts == [f"xn--bcher-kva.test:{host.port}"]
    with pytest.raises(R3InputError, match=r"non-public host 'xn--bcher-kva\.test'"):
        await normalise_images([f"http://b\u00fccher.test:{host.port}/ok.png"], {"allow_remote_images": True})


async def test_the_run_deadline_covers_the_download(host: ImageHost) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(R3InputError, match="did not finish in time"):
        await normalise_images([f"{host.base}/drip"], ALLOW, deadline=__import__("time").time() + 0.8)
    assert loop.time() - started < 3  # cut at the run's deadline, not at image_timeout_s (20 s)


# -- TLS: the name is the server name (SNI) and what the certificate is checked against --------------
def _certificates(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context for imghost.test, client context trusting only the test CA)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r3graph test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imghost.test")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("imghost.test")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp / "leaf.pem", tmp / "key.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


async def test_tls_uses_the_name_for_sni_and_certificate_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_tls, client_tls = _certificates(tmp_path)
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc,func-returns-value]
    monkeypatch.setattr("r3graph.image_fetch._TLS", [client_tls])
    monkeypatch.setattr("r3graph.image_fetch.resolve", FakeDNS({"imghost.test": ["127.0.0.1"],
                                                                "other.test": ["127.0.0.1"]}).resolve)
    with ImageHost() as host:
        assert host._httpd is not None
        host._httpd.socket = server_tls.wrap_socket(host._httpd.socket, server_side=True)
        data = await fetch_image(f"https://imghost.test:{host.port}/ok.png", max_bytes=2**20, deadline=deadline(),
                                 allow_private=True, label="images[0]")
        assert data == GOOD_PNG and names == ["imghost.test"] and host.hosts == [f"imghost.test:{host.port}"]
        # Another name on the same address: the certificate does not match it, so no image.
        with pytest.raises(R3InputError, match=r"could not fetch|CERTIFICATE_VERIFY_FAILED|certificate"):
            await fetch_image(f"https://other.test:{host.port}/ok.png", max_bytes=2**20, deadline=deadline(),
                              allow_private=True, label="images[0]")
