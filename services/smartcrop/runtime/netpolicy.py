"""Which network addresses a job may make smartcrop reach: the guard against server-side request forgery.

A job names URLs that the services fetch (http(s) sources, foreign S3 sources) or write to (foreign S3
destinations). Without a guard, a job could read the cloud metadata service, an admin port on loopback or anything on
the private network. Every outbound connection made for a job goes through :func:`guarded_pool_manager`: the host is
resolved once, every address is checked, and the socket connects to the checked address itself, so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot slip through. Redirects open new connections, so
each hop is checked again.

Blocked unless ``SMARTCROP_ALLOWED_NETWORKS`` lists them (CIDRs, addresses or exact host names): loopback, private
(RFC 1918, IPv6 ULA), link-local (including 169.254.169.254 and fd00:ec2::254, the cloud metadata services), shared
address space (CGNAT 100.64.0.0/10), unspecified, multicast, reserved and documentation ranges, and the same addresses
wrapped in IPv6 (IPv4-mapped, 6to4, NAT64). The deployment's own S3 endpoint (``SMARTCROP_S3_ENDPOINT``) is always
reachable; it does not go through this guard.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Iterable

from smartcrop.core.job import JobError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
ALLOW_HINT = "allow it with SMARTCROP_ALLOWED_NETWORKS"


class BlockedAddress(JobError):
    """A job URL that leads to an address jobs may not reach (code ``invalid_job``)."""


def blocked_reason(ip: IPAddress) -> str | None:
    """Why a job may not reach ``ip`` (``"loopback"``, ``"private"`` ...), or ``None`` for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        if embedded is not None:
            return blocked_reason(embedded)
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    for reason, test in (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
                         ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                         ("site-local", getattr(ip, "is_site_local", False)),
                         ("shared (CGNAT)", isinstance(ip, ipaddress.IPv4Address) and ip in SHARED_SPACE),
                         ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if test:
            return reason
    return None if ip.is_global else "non-public"


@dataclass(frozen=True)
class NetworkPolicy:
    """The default blocks plus an allow-list of networks and exact host names."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> "NetworkPolicy":
        """``10.0.0.0/8``, ``127.0.0.1``, ``::1`` or ``media.internal`` (a host name is trusted, all its addresses)."""
        networks, hosts = [], set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, ip: IPAddress) -> bool:
        return blocked_reason(ip) is None or any(ip in network for network in self.allowed_networks)

    def resolve(self, host: str, port: int, field: str) -> list[str]:
        """Every address of ``host``, checked; raises :class:`BlockedAddress` if any is not allowed.

        One blocked address blocks the host: a name that points both outside and inside is not trusted.
        """
        name = host.strip("[]").lower().rstrip(".")
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except UnicodeError:  # an international name that IDNA cannot encode
            raise JobError(field, f"{host!r} is not a valid host name") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if name in self.allowed_hosts:
            return addresses
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not self.allows(ip):
                shown = name if name == address else f"{name} ({address})"
                raise BlockedAddress(field, f"{shown} is a {blocked_reason(ip)} address, which jobs may not reach; "
                                            f"{ALLOW_HINT}")
        return addresses

    def check(self, host: str, port: int, field: str) -> None:
        """Fail early on a blocked host; the connection itself checks again (the answer may change)."""
        try:
            self.resolve(host, port, field)
        except socket.gaierror:
            pass  # the connection reports a name that does not resolve, with the right error code


def guarded_pool_manager(policy: NetworkPolicy, field: str, *, connect_timeout: float, read_timeout: float,
                         ca_bundle: str | None = None, retries=False, maxsize: int = 4):
    """A urllib3 pool manager whose every connection goes to a checked address of its host.

    TLS still verifies the certificate against the host name (SNI and hostname matching use the URL's host).
    """
    import certifi
    from urllib3 import PoolManager, Timeout
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
    from urllib3.util import connection

    def new_conn(conn) -> socket.socket:
        try:
            addresses = policy.resolve(conn.host, conn.port, field)
        except socket.gaierror as exc:
            raise NameResolutionError(conn.host, conn, exc) from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return connection.create_connection((address, conn.port), conn.timeout,
                                                    source_address=conn.source_address,
                                                    socket_options=conn.socket_options)
            except TimeoutError as exc:
                failure = ConnectTimeoutError(conn, f"connection to {conn.host} timed out")
                failure.__cause__ = exc
            except OSError as exc:
                failure = NewConnectionError(conn, f"failed to connect to {conn.host}: {exc}")
        raise failure or NewConnectionError(conn, f"{conn.host} has no address")

    class GuardedHTTPConnection(HTTPConnection):
        _new_conn = new_conn

    class GuardedHTTPSConnection(HTTPSConnection):
        _new_conn = new_conn

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    manager = PoolManager(timeout=Timeout(connect=connect_timeout, read=read_timeout), retries=retries,
                          maxsize=maxsize, cert_reqs="CERT_REQUIRED", ca_certs=ca_bundle or certifi.where())
    manager.pool_classes_by_scheme = {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}
    return manager
