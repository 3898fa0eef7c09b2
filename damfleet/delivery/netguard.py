"""Outbound safety for HTTP targets and webhooks: no requests into private networks.

A delivery URL comes from configuration, but a redirect or a DNS answer comes from the
outside world, and an HTTP client that follows them can be steered at the worker's own
network: the cloud metadata service (169.254.169.254), the Temporal frontend, a database
on 10.x. So the check runs where the connection is made, not where the URL is parsed:

- :class:`GuardedNetworkBackend` is httpcore's network layer. Every TCP connection (the
  first request, every redirect hop, every reconnect) resolves the host itself, refuses
  if *any* resolved address is loopback, private, link-local, shared, reserved, multicast
  or a metadata address, and then connects to the address it checked, so a DNS answer
  that changes between check and connect (rebinding) cannot slip through. TLS still
  verifies the certificate against the host name.
- ``DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS`` lists CIDRs (``10.0.0.0/8``) or host
  names (``minio.internal``) that may be reached anyway. Metadata addresses stay refused
  unless that exact address is listed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore
import httpx

from damfleet.errors import ConfigurationError, OutboundBlockedError

__all__ = [
    "METADATA_ADDRESSES",
    "GuardedNetworkBackend",
    "OutboundBlockedError",
    "OutboundPolicy",
    "checked_addresses",
    "guarded_client",
    "resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Instance metadata endpoints of the common clouds (AWS/GCP/Azure/OpenStack, AWS ECS,
#: AWS IPv6, Alibaba, Oracle). Refused even inside an allowlisted range.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IP literals resolve to themselves).

    Module-level so tests can stand in a resolver that answers a private address for a
    public-looking name.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


def _why_forbidden(ip: IPAddress) -> str:
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a reserved or shared (non-global) address"
    return ""


@dataclass(frozen=True)
class OutboundPolicy:
    """Which addresses outbound delivery requests may connect to."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> OutboundPolicy:
        """Parse allowlist entries: CIDRs, single addresses or host names."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            text = entry.strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            if "/" in text or " " in text:
                raise ConfigurationError(
                    f"DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS: {text!r} is neither a CIDR nor a host name"
                )
            hosts.add(text.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def check(self, host: str, address: str) -> None:
        """Raise OutboundBlockedError when ``host`` (resolved to ``address``) may not be reached."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        reason = _why_forbidden(ip)
        if not reason:
            return
        host_key = host.lower().rstrip(".")
        if ip in METADATA_ADDRESSES:
            exact = any(net.num_addresses == 1 and ip in net for net in self.allowed_networks)
            if exact:
                return
        elif host_key in self.allowed_hosts or any(ip in net for net in self.allowed_networks):
            return
        shown = host if host == str(ip) else f"{host} ({ip})"
        raise OutboundBlockedError(
            f"refusing to connect to {shown}: {reason}; allow it explicitly with "
            f"DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS if this target is meant to be internal"
        )


async def checked_addresses(policy: OutboundPolicy, host: str, port: int, timeout: float | None = None) -> list[str]:
    """The addresses ``host`` resolves to, each allowed by ``policy``; connect to these, never
    to ``host`` again (a second lookup could answer differently). Used by every protocol:
    HTTP through :class:`GuardedNetworkBackend`, SFTP and FTP directly.

    Raises OutboundBlockedError when any answer is forbidden (a name with one public and
    one private address must not be usable to reach the private one on a later
    connection), OSError when the name does not resolve.
    """
    addresses = await asyncio.wait_for(resolve(host, port), timeout)
    if not addresses:
        raise OSError(f"{host} resolved to no address")
    for address in addresses:
        policy.check(host, address)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with the outbound policy applied to every connection."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(self._policy, host, port, timeout)
        except (TimeoutError, OSError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundBlockedError(f"refusing to connect to unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's default transport whose connection pool uses the guarded network backend.

    httpx has no public hook for the network backend, so the pool built by the parent is
    replaced with an equivalent one; tests/damfleet/delivery/test_netguard.py fails if a
    future httpx stops routing connections through it.
    """

    def __init__(self, policy: OutboundPolicy, *, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedNetworkBackend(policy),
        )


def guarded_client(
    policy: OutboundPolicy,
    *,
    verify_tls: bool = True,
    ca_bundle: str = "",
    timeout_seconds: float = 60.0,
    max_connections: int = 64,
) -> httpx.AsyncClient:
    """An httpx client for untrusted destinations: policy-checked connections, TLS verified
    by default, no proxy or netrc from the environment, redirects left to the caller."""
    if ca_bundle:
        try:
            ssl_context = ssl.create_default_context(cafile=ca_bundle)
        except OSError as exc:
            raise ConfigurationError(f"cannot read CA bundle {ca_bundle}: {exc}") from exc
    else:
        ssl_context = httpx.create_ssl_context(verify=verify_tls, trust_env=False)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(
        transport=_GuardedTransport(policy, ssl_context=ssl_context, limits=limits),
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        trust_env=False,
    )
