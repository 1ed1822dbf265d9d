"""Where outbound calls to users' URLs may go, and how they are made.

Decisions are tested without traffic: IP literals resolve without a lookup,
and names resolve through a stand-in resolver. Calls go only to servers on
loopback addresses, allow-listed.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core import outbound
from core.outbound import DestinationRefused, OutboundError, OutboundTimeout
from tests.receivers import Receiver

INTERNAL = [
    # IPv4 special-purpose ranges
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "100.100.100.200",  # a cloud's metadata service, in that space
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.254",
    "192.0.0.1",
    "192.0.0.100",
    "192.0.0.170",
    "192.0.2.1",
    "192.168.0.1",
    "192.168.255.254",
    "198.18.0.1",
    "198.19.255.254",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "224.0.1.1",  # multicast that ipaddress counts as global
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.254",
    "255.255.255.255",
    # IPv6
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "febf::1",
    "fec0::1",
    "feff::1",
    "ff02::1",
    "ff0e::1",
    "2001:db8::1",
    "100::1",
    # IPv6 forms with an internal IPv4 address inside
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated, refused whatever it carries)
    "::a9fe:a9fe",
    "::8.8.8.8",
    "::ffff:0:7f00:1",  # IPv4-translated
    "5f00::1",  # outside the global unicast range
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "2002:a00:1::1",
    "2001:0:808:808::80ff:fffe",  # Teredo, client 127.0.0.1 behind server 8.8.8.8
    "2001:0:7f00:1::f7f7:f7f7",  # Teredo, server 127.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::808:808",  # local-use NAT64: the operator's own network
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.254",
    "100.128.0.1",
    "172.15.255.254",
    "172.32.0.1",
    "192.0.1.1",
    "198.17.255.254",
    "198.20.0.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "2002:808:808::",
    "64:ff9b::808:808",
]


def literal_url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:8080/hook"


@pytest.mark.parametrize("address", INTERNAL)
def test_an_internal_address_is_refused(address):
    assert outbound.is_public_address(ipaddress.ip_address(address)) is False
    with pytest.raises(DestinationRefused, match="internal address"):
        outbound.resolve_destination(literal_url(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_a_public_address_is_allowed(address):
    assert outbound.is_public_address(ipaddress.ip_address(address)) is True
    destination = outbound.resolve_destination(literal_url(address))
    assert destination.addresses == (str(ipaddress.ip_address(address)),)


@pytest.mark.parametrize("host", ["0x7f.1", "2130706433", "0177.0.0.1", "127.1"])
def test_an_ipv4_address_in_another_notation_is_checked_as_what_it_means(host):
    with pytest.raises(DestinationRefused, match="internal address"):
        outbound.resolve_destination(f"http://{host}/")


# --- names, through a stand-in resolver ---------------------------------------------


class Resolver:
    """Answers for names under .test from a table; everything else as the system does."""

    def __init__(self, monkeypatch) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []
        self._system = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)

    def answer(self, name: str, *answers: list[str]) -> None:
        """Each lookup of ``name`` gets the next of ``answers``."""
        self.answers[name] = list(answers)

    def getaddrinfo(self, host, port, *args, **kwargs):
        if not str(host).endswith(".test"):
            return self._system(host, port, *args, **kwargs)
        self.lookups.append(host)
        if not self.answers.get(host):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos = []
        for address in self.answers[host].pop(0):
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos


@pytest.fixture
def resolver(monkeypatch) -> Resolver:
    return Resolver(monkeypatch)


def test_a_name_is_allowed_when_every_address_it_resolves_to_is_public(resolver):
    resolver.answer("public.test", ["93.184.216.34", "2606:2800:220:1::1"])
    destination = outbound.resolve_destination("https://public.test/hook")
    assert destination.addresses == ("93.184.216.34", "2606:2800:220:1::1")
    assert resolver.lookups == ["public.test"]


def test_a_name_is_refused_when_any_address_it_resolves_to_is_internal(resolver):
    resolver.answer("mixed.test", ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(DestinationRefused, match=r"'mixed\.test' resolves to an internal address"):
        outbound.resolve_destination("https://mixed.test/hook")


def test_a_scoped_link_local_answer_is_refused(resolver):
    resolver.answer("scoped.test", ["fe80::1%eth0"])
    with pytest.raises(DestinationRefused, match="internal address"):
        outbound.resolve_destination("http://scoped.test/")


def test_a_name_that_does_not_resolve_is_refused(resolver):
    resolver.answer("empty.test", [])
    with pytest.raises(DestinationRefused, match=r"Cannot resolve host 'nowhere\.test'"):
        outbound.resolve_destination("http://nowhere.test/")
    with pytest.raises(DestinationRefused, match=r"Cannot resolve host 'empty\.test'"):
        outbound.resolve_destination("http://empty.test/")


def test_an_allow_listed_name_may_resolve_internal_and_is_still_pinned(resolver, settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["Inside.TEST.", "[::1]"]
    resolver.answer("inside.test", ["10.0.0.7"])
    assert outbound.resolve_destination("http://inside.test/").addresses == ("10.0.0.7",)
    assert outbound.resolve_destination("http://[::1]:9/").addresses == ("::1",)
    with pytest.raises(DestinationRefused, match="internal address"):
        outbound.resolve_destination("http://127.0.0.1/")


# --- URLs that parsers could read differently -----------------------------------------

DISAGREEING_URLS = [
    # urllib3 ends the host at the backslash (127.0.0.1), urllib.parse reads 1.1.1.1.
    "http://127.0.0.1:18902\\@1.1.1.1/../../internal/secret",
    "http://1.1.1.1\\@127.0.0.1/",
    "http://127.0.0.1\\.1.1.1.1/",
    "http://example.com\\",
    "http://example.com/a\\b",
    # userinfo
    "http://user:pass@example.com/",
    "http://1.1.1.1@127.0.0.1/",
    "http://127.0.0.1:80@1.1.1.1/",
    "http://@example.com/",
    "http://a@b@example.com/",
    # whitespace and control characters
    "http://example.com\t/",
    "http://exa\tmple.com/",
    "http://127.0.0.1\t@1.1.1.1/",
    "http://example.com/\n",
    "http://example.com/a b",
    " http://example.com/",
    "http://exa\x00mple.com/",
    "http://example.com/\x7f",
    # percent-escapes in the host
    "http://127.0.0.1%00.example.com/",
    "http://127.0.0.1%00@1.1.1.1/",
    "http://%31%32%37.0.0.1/",
    "http://[fe80::1%25eth0]/",
    # hosts not in IDNA form, and other non-ASCII
    "http://\u0435xample.com/",  # its "e" is Cyrillic
    "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",  # fullwidth "localhost"
    "http://127\u30020\u30020\u30021/",  # ideographic full stops
    "http://b\u00fccher.example/",
    "http://example.com/p\u00e4th",
]


@pytest.mark.parametrize("url", DISAGREEING_URLS)
def test_a_url_that_parsers_could_read_differently_is_refused_before_any_lookup(url, resolver):
    with pytest.raises(DestinationRefused):
        outbound.resolve_destination(url)
    assert resolver.lookups == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://127.0.0.1:6379/_INFO", "http:// or https://"),
        ("http:/example.com/", "http:// or https://"),
        ("http:example.com", "http:// or https://"),
        ("//example.com/", "http:// or https://"),
        ("http:///x", "no host"),
        ("http://:80/", "no host"),
        ("http://a..b/", "not a valid host name"),
        ("http://a;b/", "not a valid host name"),
        ("http://-a/", "not a valid host name"),
        ("http://[::1/hook", "Not a valid URL"),
        ("http://[127.0.0.1]/", "Not a valid URL"),
        ("http://example.com:0/", "Port 0"),
        ("http://example.com:65536/", "Not a valid URL"),
        ("http://example.com:-1/", "Not a valid URL"),
        ("http://example.com:8o/", "Not a valid URL"),
        ("http://example.com/" + "a" * 2048, "longer than"),
    ],
)
def test_a_url_that_is_not_a_callable_http_url_is_refused(url, message):
    with pytest.raises(DestinationRefused, match=message):
        outbound.parse_http_url(url)


@pytest.mark.parametrize(
    ("url", "expected", "host_header"),
    [
        (
            "HTTP://Example.COM./a/../b?q=1#frag",
            outbound.HttpUrl("http", "example.com.", 80, "/b?q=1"),
            "example.com.",
        ),
        (
            "https://[2606:4700::1111]:8443/x",
            outbound.HttpUrl("https", "2606:4700::1111", 8443, "/x"),
            "[2606:4700::1111]:8443",
        ),
        (
            "http://xn--bcher-kva.example:443",
            outbound.HttpUrl("http", "xn--bcher-kva.example", 443, "/"),
            "xn--bcher-kva.example:443",
        ),
        ("https://a_b.example", outbound.HttpUrl("https", "a_b.example", 443, "/"), "a_b.example"),
        ("http://h/@me?to=a@b", outbound.HttpUrl("http", "h", 80, "/@me?to=a@b"), "h"),
    ],
)
def test_a_url_is_read_as_the_http_client_reads_it(url, expected, host_header):
    parsed = outbound.parse_http_url(url)
    assert parsed == expected
    assert parsed.host_header == host_header


# --- calls to loopback servers ----------------------------------------------------------


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(*args, **kwargs) -> Receiver:
        started.append(Receiver(*args, **kwargs))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def test_the_call_goes_to_the_address_that_was_checked_not_to_a_new_lookup(
    receivers, resolver, settings
):
    checked = receivers("127.0.0.1", body=b"checked")
    other = receivers("127.0.0.2", checked.port, body=b"other")
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["rebind.test"]
    # A second lookup of the name would lead to the other server.
    resolver.answer("rebind.test", ["127.0.0.1"], ["127.0.0.2"])

    response = outbound.send("GET", f"http://rebind.test:{checked.port}/hook", timeout=5)

    assert resolver.lookups == ["rebind.test"]
    assert (response.status, response.body) == (200, b"checked")
    (call,) = checked.received
    assert (call.path, call.headers["Host"]) == ("/hook", f"rebind.test:{checked.port}")
    assert other.received == []


def test_the_next_checked_address_is_tried_when_one_refuses_the_connection(
    receivers, resolver, settings
):
    answering = receivers("127.0.0.1")
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["two.test"]
    resolver.answer("two.test", ["127.0.0.2", "127.0.0.1"], ["127.0.0.2"])
    outbound.send("GET", f"http://two.test:{answering.port}/", timeout=5)
    assert len(answering.received) == 1

    with pytest.raises(OutboundError, match=r"Could not connect to 'two\.test'"):
        outbound.send("GET", f"http://two.test:{answering.port}/", timeout=5)


def test_a_redirect_is_answered_not_followed(receivers, settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    inside = receivers()
    redirecting = receivers(
        status=302, headers={"Location": f"http://127.0.0.1:{inside.port}/secret"}
    )
    response = outbound.send("POST", f"http://127.0.0.1:{redirecting.port}/", json={}, timeout=5)
    assert response.status == 302
    assert inside.received == []


def test_no_more_of_the_answer_is_read_than_asked_for(receivers, settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    # 64 MiB, far more than the sockets' buffers hold.
    huge = receivers(body=b"x" * 65536, repeat=1024)

    response = outbound.send(
        "GET", f"http://127.0.0.1:{huge.port}/", timeout=5, max_body_bytes=1000
    )

    assert response.body == b"x" * 1000
    assert huge.answered.wait(10)
    assert not huge.complete and huge.sent < 65536 * 1024


def test_the_answer_is_read_up_to_64_kib_unless_told_otherwise(receivers, settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    big = receivers(body=b"y" * 65536, repeat=16)
    response = outbound.send("GET", f"http://127.0.0.1:{big.port}/", timeout=5)
    assert len(response.body) == outbound.DEFAULT_MAX_BODY_BYTES == 65536


def test_an_answer_that_trickles_in_ends_at_the_timeout(receivers, settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    slow = receivers(body=b"z", repeat=10_000, pause=0.05)
    with pytest.raises(OutboundTimeout):
        outbound.send("GET", f"http://127.0.0.1:{slow.port}/", timeout=0.5)


def test_the_request_carries_the_json_and_the_host_of_the_url(receivers, settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = receivers()
    outbound.send(
        "PUT",
        f"http://127.0.0.1:{receiver.port}/p?q=1",
        json={"a": 1},
        headers={"Host": "somewhere.else", "X-Key": "k"},
        timeout=5,
    )
    outbound.send(
        "POST",
        f"http://127.0.0.1:{receiver.port}/",
        json=[1],
        headers={"content-type": "application/vnd.x+json"},
        timeout=5,
    )
    first, second = receiver.received
    assert (first.method, first.path, first.body) == ("PUT", "/p?q=1", b'{"a": 1}')
    assert first.headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["X-Key"] == "k"
    assert second.headers["Content-Type"] == "application/vnd.x+json"


def test_a_header_with_a_line_break_fails_the_call_cleanly(receivers, settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = receivers()
    with pytest.raises(OutboundError, match="header"):
        outbound.send(
            "GET",
            f"http://127.0.0.1:{receiver.port}/",
            headers={"X-A": "1\r\nX-Injected: 2"},
            timeout=5,
        )
    assert receiver.received == []


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("text/plain; charset=latin-1", "caf\u00e9"),
        ("text/plain; charset=zlib_codec", "caf\ufffd"),
        ("text/plain; charset=no-such-charset", "caf\ufffd"),
        ("text/plain; charset=idna", "caf\ufffd"),
        ("", "caf\ufffd"),
    ],
)
def test_the_answer_is_decoded_by_its_charset_or_as_utf_8(content_type, text):
    response = outbound.Response(200, {"content-type": content_type}, b"caf\xe9")
    assert response.text == text


# --- TLS to a pinned address --------------------------------------------------------------


@pytest.fixture
def tls_for_secure_test(tmp_path, monkeypatch):
    """A server context with a certificate for secure.test, from a CA the client trusts."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("secure.test")]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setattr(certifi, "where", lambda: str(ca_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def test_tls_to_a_pinned_address_sends_and_verifies_the_name(
    receivers, resolver, settings, tls_for_secure_test
):
    names: list[str | None] = []
    tls_for_secure_test.sni_callback = lambda connection, name, context: names.append(name)
    server = receivers(body=b"over tls", tls=tls_for_secure_test)
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["secure.test", "other.test"]
    resolver.answer("secure.test", ["127.0.0.1"])
    resolver.answer("other.test", ["127.0.0.1"])

    response = outbound.send("GET", f"https://secure.test:{server.port}/", timeout=5)
    assert response.body == b"over tls"
    assert names == ["secure.test"]
    assert server.received[0].headers["Host"] == f"secure.test:{server.port}"

    # The same server under a name its certificate does not carry.
    with pytest.raises(OutboundError, match=r"TLS with 'other\.test' failed"):
        outbound.send("GET", f"https://other.test:{server.port}/", timeout=5)
    assert len(server.received) == 1
