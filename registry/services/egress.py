"""Where Lorry may send requests of its own (webhooks, deployment rollouts): SSRF rules.

A URL must be ``http`` or ``https`` and every address its host resolves to must be
public (``ipaddress``'s ``is_global``), unless the operator allows private addresses
(``LORRY_WEBHOOK_ALLOW_PRIVATE``) or the address lies in ``LORRY_WEBHOOK_ALLOW_CIDRS``.
The check runs when a webhook or target is created and again before every delivery,
so that a name that later resolves to an internal address (DNS rebinding) is refused
then. What remains: the window between this check and the connection's own lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from registry.config import Settings
from registry.errors import DestinationRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class EgressRules:
    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressRules:
        networks: list[IPNetwork] = []
        for item in settings.webhook_allow_cidrs.split(","):
            if item.strip():
                try:
                    networks.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError as exc:
                    raise DestinationRefused(
                        f"LORRY_WEBHOOK_ALLOW_CIDRS holds {item.strip()!r}, which is not a "
                        "network (write e.g. 10.0.0.0/8,fd00::/8)"
                    ) from exc
        return cls(settings.webhook_allow_private, tuple(networks))

    def allows(self, address: IPAddress) -> bool:
        if address.is_global and not address.is_multicast:
            return True
        if any(address in network for network in self.allowed_networks):
            return True
        return self.allow_private and not (address.is_multicast or address.is_unspecified)


def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused(
            f"cannot resolve {host!r} ({exc}); use a host name this server can resolve"
        ) from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        addresses.append(address)
    return addresses


def check_destination(url: str, rules: EgressRules) -> None:
    """Refuse (``DestinationRefused``) a URL that Lorry must not send to (module docstring)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused(
            f"{url!r} is not an http(s) URL with a host; write e.g. https://hooks.example.com/x"
        )
    if parts.username or parts.password:
        raise DestinationRefused(
            f"{parts.scheme}://{parts.hostname}... carries credentials in the URL; webhooks "
            "are authenticated by their signature"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise DestinationRefused(f"{url!r} has an invalid port") from exc
    for address in _addresses(parts.hostname, port):
        if not rules.allows(address):
            raise DestinationRefused(
                f"{parts.hostname} resolves to {address}, a private, loopback or link-local "
                "address, which Lorry does not send to unless the operator allows it "
                "(LORRY_WEBHOOK_ALLOW_CIDRS=<network>, or LORRY_WEBHOOK_ALLOW_PRIVATE=1)"
            )
