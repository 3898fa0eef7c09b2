"""SSRF refusals: loopback, metadata, private DNS answers and redirects into them."""

from __future__ import annotations

import pytest

from damfleet.delivery import OutboundBlockedError, OutboundPolicy, netguard
from tests.delivery_receiver import DeliveryReceiver


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "non-global"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_policy_refuses_non_public_addresses(address: str, reason: str) -> None:
    with pytest.raises(OutboundBlockedError, match=reason):
        OutboundPolicy().check("h", address)


def test_policy_allows_public_and_allowlisted_but_never_metadata_by_range() -> None:
    OutboundPolicy().check("example.com", "93.184.216.34")
    policy = OutboundPolicy.from_entries(["10.0.0.0/8", "minio.internal", "169.254.0.0/16"])
    policy.check("x", "10.9.9.9")
    policy.check("minio.internal", "192.168.1.1")
    with pytest.raises(OutboundBlockedError, match="metadata"):
        policy.check("x", "169.254.169.254")
    OutboundPolicy.from_entries(["169.254.169.254"]).check("x", "169.254.169.254")   # named exactly


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/x", "http://localhost:{port}/x", "http://[::1]:{port}/x"])
async def test_loopback_targets_are_refused_before_connecting(distributor_for, stored_rendition, url: str) -> None:
    async with DeliveryReceiver() as receiver:
        distributor, _ = distributor_for({"p": {"type": "http", "url": url.format(port=receiver.port)}})
        item = await stored_rendition(distributor.storage)
        with pytest.raises(OutboundBlockedError, match="'p'.*loopback"):
            await distributor.deliver("p", item)
    assert receiver.requests == 0


async def test_metadata_address_is_refused(distributor_for, stored_rendition) -> None:
    distributor, _ = distributor_for(
        {"p": {"type": "http", "url": "http://169.254.169.254/latest/meta-data/"}},
        DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS="127.0.0.1/32,169.254.0.0/16",
    )
    item = await stored_rendition(distributor.storage)
    with pytest.raises(OutboundBlockedError, match="metadata"):
        await distributor.deliver("p", item)


async def test_public_name_resolving_to_private_address_is_refused(
    distributor_for, stored_rendition, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    async def evil_dns(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["93.184.216.34", "10.0.0.5"] if host == "partner.example.com" else []

    monkeypatch.setattr(netguard, "resolve", evil_dns)
    distributor, _ = distributor_for({"p": {"type": "http", "url": "https://partner.example.com/in"}})
    item = await stored_rendition(distributor.storage)
    with pytest.raises(OutboundBlockedError, match=r"partner\.example\.com \(10\.0\.0\.5\).*private"):
        await distributor.deliver("p", item)
    assert asked == ["partner.example.com"]


@pytest.mark.parametrize(
    "location", ["http://169.254.169.254/latest/meta-data/iam", "http://10.0.0.1/admin", "http://[::1]:1/x"]
)
async def test_redirect_into_private_network_is_refused(distributor_for, stored_rendition, location: str) -> None:
    async with DeliveryReceiver() as receiver:
        receiver.redirect("/drop", location, status=302)
        distributor, _ = distributor_for(
            {"p": {"type": "http", "url": receiver.url + "/drop"}},
            DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS="127.0.0.1/32",
        )
        item = await stored_rendition(distributor.storage)
        with pytest.raises(OutboundBlockedError, match="redirected from"):
            await distributor.deliver("p", item)
    assert receiver.files == []


async def test_webhook_to_loopback_is_refused(distributor_for) -> None:
    async with DeliveryReceiver(webhook_secret="s") as receiver:
        distributor, _ = distributor_for({"hook": {"type": "webhook", "url": receiver.url + "/hooks/x", "secret": "s"}})
        with pytest.raises(OutboundBlockedError, match="'hook'"):
            await distributor.notify("hook", b"{}", idempotency_key="k")
    assert receiver.requests == 0
