"""What a job may make smartcrop reach: the SSRF guard on http(s) and S3 hosts, and local files in service mode.

The HTTP tests use real servers bound to loopback: blocked by default, reachable once allow-listed, and never reached
through a redirect to an address that is not allowed.
"""

from __future__ import annotations

import http.server
import ipaddress
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from smartcrop.core.job import Destination, JobError, Limits, parse_job
from smartcrop.runtime import netpolicy
from smartcrop.runtime.admission import admit
from smartcrop.runtime.config import Settings
from smartcrop.runtime.netpolicy import BlockedAddress, NetworkPolicy, blocked_reason
from smartcrop.runtime.storage import LocalStorage
from smartcrop.runtime.transfer import SourceError, download_http, ingest_source, publish_outputs

SERVICE = Settings(s3_endpoint="http://127.0.0.1:19000")  # a service's defaults: nothing allow-listed
LOOPBACK_ALLOWED = replace(SERVICE, allowed_networks=("127.0.0.1/32",))


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.3.4.5", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd12:3456::1", "private"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"), ("169.254.10.1", "link-local"),
    ("fe80::1", "link-local"), ("100.64.0.1", "shared (CGNAT)"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "cloud metadata"),  # IPv4-mapped IPv6
    ("64:ff9b::a00:1", "private"), ("2002:7f00:1::1", "loopback"),  # NAT64 and 6to4 wrappings
    ("8.8.8.8", None), ("2606:4700:4700::1111", None),
])
def test_addresses_outside_the_public_internet_are_blocked(address, reason):
    assert blocked_reason(ipaddress.ip_address(address)) == reason


def test_the_allow_list_takes_networks_addresses_and_host_names():
    policy = NetworkPolicy.parse(["10.0.0.0/8", "::1", " media.internal ", ""])
    assert policy.allows(ipaddress.ip_address("10.20.30.40")) and policy.allows(ipaddress.ip_address("::1"))
    assert not policy.allows(ipaddress.ip_address("127.0.0.1"))
    assert policy.allowed_hosts == frozenset({"media.internal"})


class Server:
    """A loopback HTTP server whose routes are (status, headers, body) or a callable; it records every request."""

    def __init__(self, routes: dict, host: str = "127.0.0.1"):
        self.routes, self.requests = routes, []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append((self.path, self.headers.get("Host")))
                route = owner.routes.get(self.path.split("?")[0], (404, {}, b""))
                if callable(route):
                    return route(self)
                status, headers, body = route
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    running = []

    def start(routes, host="127.0.0.1"):
        running.append(Server(routes, host))
        return running[-1]

    yield start
    for item in running:
        item.close()


def test_a_loopback_source_is_blocked_by_default_and_never_contacted(server, tmp_path):
    origin = server({"/clip.mp4": (200, {}, b"video bytes")})
    with pytest.raises(BlockedAddress) as caught:
        download_http(f"{origin.url}/clip.mp4", tmp_path / "x", SERVICE)
    assert str(caught.value) == ("source: 127.0.0.1 is a loopback address, which jobs may not reach; allow it with "
                                 "SMARTCROP_ALLOWED_NETWORKS")
    assert caught.value.code == "invalid_job"
    assert origin.requests == []
    download_http(f"{origin.url}/clip.mp4", tmp_path / "x", LOOPBACK_ALLOWED)
    assert (tmp_path / "x").read_bytes() == b"video bytes"


def test_a_host_name_is_checked_after_resolution(server, tmp_path):
    origin = server({"/clip.mp4": (200, {}, b"video bytes")})
    port = origin.server.server_address[1]
    with pytest.raises(BlockedAddress, match=r"^source: localhost \(127\.0\.0\.1\) is a loopback address"):
        download_http(f"http://localhost:{port}/clip.mp4", tmp_path / "x", replace(SERVICE, allowed_networks=()))
    assert origin.requests == []


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/iam/", "http://127.0.0.2:{port}/secret",
                                    "http://[::ffff:127.0.0.2]:{port}/secret"])
def test_a_redirect_to_a_blocked_address_is_refused_at_every_hop(server, tmp_path, target):
    inside = server({"/secret": (200, {}, b"internal data")}, host="127.0.0.2")
    target = target.format(port=inside.server.server_address[1])
    origin = server({"/a": (302, {"Location": "/b"}, b""), "/b": (301, {"Location": target}, b"")})
    with pytest.raises(BlockedAddress) as caught:
        download_http(f"{origin.url}/a", tmp_path / "x", LOOPBACK_ALLOWED)  # 127.0.0.1 only, not 127.0.0.2
    assert caught.value.field == "source"
    assert caught.value.message.startswith(f"redirected to {target}: ")
    assert "which jobs may not reach; allow it with SMARTCROP_ALLOWED_NETWORKS" in caught.value.message
    assert [path for path, _ in origin.requests] == ["/a", "/b"] and inside.requests == []


def test_redirects_between_allowed_hosts_are_followed_and_bounded(server, tmp_path):
    origin = server({"/a": (302, {"Location": "/b"}, b""), "/b": (200, {}, b"ok"),
                     **{f"/loop{i}": (302, {"Location": f"/loop{i + 1}"}, b"") for i in range(10)}})
    download_http(f"{origin.url}/a", tmp_path / "x", LOOPBACK_ALLOWED)
    assert (tmp_path / "x").read_bytes() == b"ok"
    with pytest.raises(SourceError, match="more than 5 redirects"):
        download_http(f"{origin.url}/loop0", tmp_path / "x", LOOPBACK_ALLOWED)
    origin.routes["/ftp"] = (302, {"Location": "ftp://example.com/x"}, b"")
    with pytest.raises(JobError, match="^source: redirected to an unsupported scheme: ftp://example.com/x$"):
        download_http(f"{origin.url}/ftp", tmp_path / "x", LOOPBACK_ALLOWED)


def test_the_connection_goes_to_the_checked_address_so_dns_rebinding_fails(server, tmp_path, monkeypatch):
    origin = server({"/clip.mp4": (200, {}, b"video bytes")})
    port = origin.server.server_address[1]
    answers = {"media.example": ["127.0.0.1"]}
    lookups = []

    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host].pop(0), port))]

    monkeypatch.setattr(netpolicy.socket, "getaddrinfo", fake_getaddrinfo)
    allowed = replace(SERVICE, allowed_networks=("127.0.0.1",))
    download_http(f"http://media.example:{port}/clip.mp4", tmp_path / "x", allowed)
    assert lookups == ["media.example"]  # resolved once, and the socket went to that address
    assert origin.requests == [("/clip.mp4", f"media.example:{port}")]  # the Host header keeps the name

    # first answer public (passes an early check), then loopback: the connection's own check refuses it
    answers["rebind.example"] = ["93.184.216.34", "127.0.0.1"]
    policy = NetworkPolicy()
    policy.check("rebind.example", port, "source")
    with pytest.raises(BlockedAddress, match="rebind.example \\(127.0.0.1\\) is a loopback address"):
        download_http(f"http://rebind.example:{port}/clip.mp4", tmp_path / "x", SERVICE)
    assert len(origin.requests) == 1


def test_a_server_that_stalls_hits_the_read_timeout(server, tmp_path):
    stall = threading.Event()
    origin = server({"/slow.mp4": lambda handler: stall.wait(10)})
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"^source download failed: read timeout for http://127\.0\.0\.1:\d+/slow"):
        download_http(f"{origin.url}/slow.mp4?token=abc", tmp_path / "x",
                      replace(LOOPBACK_ALLOWED, http_read_timeout=0.5))
    assert time.monotonic() - started < 5
    stall.set()


def test_a_refused_connection_and_an_unknown_host_are_source_unreadable(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(SourceError, match="connection refused"):
            download_http(f"http://127.0.0.1:{port}/x.mp4", tmp_path / "x", LOOPBACK_ALLOWED)
    with pytest.raises(SourceError, match="host name does not resolve"):
        download_http("http://no-such-host.invalid/x.mp4", tmp_path / "x", SERVICE)
    with pytest.raises(JobError, match=r"^source: '\w{70}\.com' is not a valid host name$"):  # IDNA: label too long
        download_http(f"http://{'a' * 70}.com/x.mp4", tmp_path / "x", SERVICE)


def test_the_download_stops_at_the_size_limit(server, tmp_path):
    def chunked(handler):  # no Content-Length: the limit is enforced while reading
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for _ in range(64):
            handler.wfile.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    origin = server({"/big.mp4": (200, {}, b"x" * 5000), "/chunked.mp4": chunked})
    small = replace(LOOPBACK_ALLOWED, limits=Limits(max_source_bytes=4096))
    for path in ("/big.mp4", "/chunked.mp4"):
        with pytest.raises(JobError) as caught:
            download_http(origin.url + path, tmp_path / "x", small)
        assert str(caught.value) == "source: the file is larger than the 4096 byte limit (SMARTCROP_MAX_SOURCE_BYTES)"


def test_query_strings_and_user_info_stay_out_of_errors(server, tmp_path):
    origin = server({})
    url = origin.url.replace("http://", "http://user:hunter2@") + "/missing.mp4?X-Amz-Signature=sig123"
    with pytest.raises(SourceError) as caught:
        download_http(url, tmp_path / "x", LOOPBACK_ALLOWED)
    assert str(caught.value) == f"source download failed: HTTP 404 from {origin.url}/missing.mp4"


# ---------------------------------------------------------------------------------------------------------------------
# S3 hosts a job names


def job_with_destination(url: str):
    return parse_job({"query": {"source": "s3://127.0.0.1:19000/smartcrop/in.mp4", "format": [
        {"output": "mp4", "destination": {"url": url, "key": "AK", "secret": "SK"}}]}})


def test_s3_destinations_on_blocked_addresses_are_refused_before_any_work():
    with pytest.raises(BlockedAddress) as caught:
        admit(job_with_destination("s3://169.254.169.254/bucket/out.mp4"), SERVICE)
    assert caught.value.field == "format[0].destination.url"
    assert caught.value.message.startswith("169.254.169.254 is a cloud metadata address")
    admit(job_with_destination("s3://127.0.0.1:19000/deliveries/out.mp4"), SERVICE)  # our own store
    with pytest.raises(BlockedAddress, match="127.0.0.1 is a loopback address"):
        admit(job_with_destination("s3://127.0.0.1:9999/deliveries/out.mp4"), SERVICE)


def test_an_upload_to_a_blocked_s3_host_fails_without_connecting(tmp_path):
    rendered = tmp_path / "out.mp4"
    rendered.write_bytes(b"mp4")
    with pytest.raises(BlockedAddress) as caught:
        publish_outputs(rendered, [rendered], destination=Destination("s3://10.0.0.7:9000/b-1/out.mp4", "AK"),
                        secret="SK", storage=None, job_id="j", format_index=2, is_directory=False, settings=SERVICE)
    assert str(caught.value).startswith("format[2].destination.url: 10.0.0.7 is a private address")


def test_an_s3_source_on_a_blocked_host_is_refused(tmp_path):
    with pytest.raises(BlockedAddress, match="^source: 192.168.0.10 is a private address"):
        ingest_source("s3://192.168.0.10:9000/media/in.mp4", LocalStorage(tmp_path), "j", SERVICE)


# ---------------------------------------------------------------------------------------------------------------------
# local files


@pytest.fixture
def tree(tmp_path) -> Path:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "in.mp4").write_bytes(b"video")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "key.pem").write_bytes(b"secret")
    (tmp_path / "media" / "link.mp4").symlink_to(tmp_path / "private" / "key.pem")
    return tmp_path


def test_services_read_no_local_file_unless_a_root_allows_it(tree):
    storage = LocalStorage(tree / "store")
    with pytest.raises(JobError) as caught:
        ingest_source(str(tree / "media" / "in.mp4"), storage, "j", SERVICE)
    assert str(caught.value) == ("source: local files are not read by the services; use http(s):// or s3://, or set "
                                 "SMARTCROP_FILE_SOURCE_ROOTS to the folders they may read")
    rooted = replace(SERVICE, file_source_roots=(str(tree / "media"),))
    assert ingest_source((tree / "media" / "in.mp4").as_uri(), storage, "j", rooted) == \
        (tree / "media" / "in.mp4").as_uri()


@pytest.mark.parametrize("source", ["{root}/media/../private/key.pem", "file://{root}/media/../private/key.pem",
                                    "{root}/media/link.mp4", "/etc/passwd", "media/in.mp4"])
def test_no_path_leads_out_of_the_allowed_roots(tree, source):
    rooted = replace(SERVICE, file_source_roots=(str(tree / "media"),))
    with pytest.raises(JobError) as caught:
        ingest_source(source.format(root=tree), LocalStorage(tree / "store"), "j", rooted)
    assert caught.value.field == "source"
    assert "outside the folders the services may read" in caught.value.message or \
        caught.value.message == "expected an absolute path, got 'media/in.mp4'"


def test_an_embedded_run_reads_the_users_own_files(tree):
    embedded = replace(SERVICE, embedded=True)
    uri = ingest_source(str(tree / "private" / "key.pem"), LocalStorage(tree / "store"), "j", embedded)
    assert uri == (tree / "private" / "key.pem").as_uri()


def test_an_embedded_run_writes_a_local_destination(tmp_path):
    rendered = tmp_path / "out.mp4"
    rendered.write_bytes(b"mp4")
    kwargs = dict(destination=Destination(str(tmp_path / "delivered.mp4")), secret=None,
                  storage=LocalStorage(tmp_path), job_id="j", format_index=0, is_directory=False)
    assert publish_outputs(rendered, [rendered], settings=replace(SERVICE, embedded=True), **kwargs) == [
        (tmp_path / "delivered.mp4").as_uri()]


def test_the_policy_and_limits_come_from_the_environment(monkeypatch):
    for key, value in {"ALLOWED_NETWORKS": "10.0.0.0/8, media.internal", "FILE_SOURCE_ROOTS": "/srv/media:/mnt/in",
                       "HTTP_CONNECT_TIMEOUT": "3", "HTTP_READ_TIMEOUT": "7.5", "MAX_FORMATS": "4",
                       "MAX_DURATION": "600", "MAX_RESOLUTION": "1080x1920", "MAX_SOURCE_BYTES": "1000000",
                       "S3_CA_BUNDLE": "/etc/ssl/private-ca.pem"}.items():
        monkeypatch.setenv(f"SMARTCROP_{key}", value)
    settings = Settings.from_env()
    assert settings.allowed_networks == ("10.0.0.0/8", "media.internal")
    assert settings.file_source_roots == ("/srv/media", "/mnt/in") and not settings.embedded
    assert (settings.http_connect_timeout, settings.http_read_timeout) == (3.0, 7.5)
    assert settings.limits == Limits(max_formats=4, max_duration=600.0, max_resolution=(1920, 1080),
                                     max_source_bytes=1_000_000)
    assert settings.s3_ca_bundle == "/etc/ssl/private-ca.pem"
    monkeypatch.setenv("SMARTCROP_MAX_SOURCE_BYTES", "20GB")
    with pytest.raises(ValueError, match="^SMARTCROP_MAX_SOURCE_BYTES must be an integer, got '20GB'$"):
        Settings.from_env()
