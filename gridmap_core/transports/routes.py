"""Which address of this host the compute nodes can reach: the one they already use.

A submit host often has several interfaces (a public one, a cluster network, a
container bridge), and the first one it lists is not always on the nodes' network. The
scheduler knows the hosts that run the jobs; the address to advertise is this host's
end of the route to them, as Parsl's ``address_by_route`` finds it, except that the
destinations are the cluster's own nodes, not a host on the internet. A node that is
this host itself (a one-host cluster) counts with the address it has here.
"""

from __future__ import annotations

import collections
import ipaddress
import socket
from collections.abc import Iterable, Sequence

import psutil

__all__ = ["address_for_peers", "local_addresses", "source_address_to"]


def local_addresses() -> set[str]:
    """This host's own IPv4 addresses, loopback ones included."""
    return {address.address for addresses in psutil.net_if_addrs().values()
            for address in addresses if address.family == socket.AF_INET}


def _resolve(host: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return None
    return str(infos[0][4][0]) if infos else None


def source_address_to(address: str) -> str | None:
    """This host's address on the route to ``address`` (no packet is sent: connecting
    a UDP socket only picks the route); None when there is no route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((address, 9))  # the discard port; nothing is sent
            return str(probe.getsockname()[0])
        except OSError:
            return None


def address_for_peers(peers: Iterable[str], mine: set[str] | None = None) -> str | None:
    """The address of this host that the ``peers`` (host names or IPv4 addresses of
    the nodes that run the jobs) reach it by, or None when they say nothing usable.

    Each peer votes: for its own address when it is one of this host's (the node is
    this host), else for this host's end of the route to it. Loopback votes only
    count when there is nothing else (a one-host cluster known by 127.0.1.1). The most
    voted address wins; a tie goes to the first peer's vote.
    """
    mine = local_addresses() if mine is None else mine
    votes: list[str] = []
    for peer in peers:
        address = _resolve(peer)
        if address is None:
            continue
        voted = address if address in mine else source_address_to(address)
        if voted:
            votes.append(voted)
    chosen: Sequence[str] = [vote for vote in votes
                             if not ipaddress.ip_address(vote).is_loopback]
    if not chosen:
        return None
    counts = collections.Counter(chosen)
    best = max(counts.values())
    return next(vote for vote in chosen if counts[vote] == best)
