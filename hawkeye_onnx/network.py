"""Network profiles and the time estimate the reports show: time = rounds × RTT + bytes × 8 / bandwidth.

A deliberately simple model (the one HawkEye and most MPC papers use for "LAN/WAN" columns): every
round pays one round-trip latency, and every byte crosses one link of the given bandwidth. It ignores
computation, TCP slow start and parallel links, so it is a lower bound on wall-clock time, stated as
such on the page. Profiles are given as `NAME=BANDWIDTH,RTT`, e.g. `LAN=10Gbit,0.1ms`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from hawkeye_onnx.errors import ParamError


class Network(NamedTuple):
    name: str
    bandwidth_bps: float  # bits per second
    rtt_s: float  # seconds

    def seconds(self, nbytes: int, rounds: int) -> float:
        """Estimated time to send `nbytes` in `rounds` sequential rounds."""
        return rounds * self.rtt_s + nbytes * 8 / self.bandwidth_bps

    def describe(self) -> str:
        return f"{self.name}: {human_bandwidth(self.bandwidth_bps)}, RTT {human_seconds(self.rtt_s)}"


#: The defaults the reports use unless `--network` changes them.
DEFAULT_NETWORKS: tuple[Network, ...] = (
    Network("LAN", 1e9, 0.5e-3),
    Network("WAN", 100e6, 40e-3),
)

_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_NUMBER = r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)"
_BANDWIDTH = re.compile(_NUMBER + r"\s*([kmgt]?)(bit/s|bits/s|bit|bps|b/s|byte/s|bytes/s)\s*$", re.IGNORECASE)
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
_RTT = re.compile(_NUMBER + r"\s*(s|ms|us|µs)\s*$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}$")
_HELP = "expected NAME=BANDWIDTH,RTT, e.g. LAN=10Gbit,0.1ms or WAN=100Mbit,40ms"


def parse_bandwidth(text: str) -> float:
    """'10Gbit' / '100Mbps' -> bits per second; 'B/s' and 'byte/s' (capital B) count bytes."""
    m = _BANDWIDTH.match(text.strip())
    if not m:
        raise ParamError(f"--network bandwidth {text!r}: use a number with a unit such as 100Mbit, 10Gbit or 1GB/s")
    unit = m.group(3)
    bytes_unit = unit.lower().startswith("byte") or unit in ("B/s", "Bps")
    value = float(m.group(1)) * _PREFIX[m.group(2).lower()] * (8 if bytes_unit else 1)
    if value <= 0:
        raise ParamError(f"--network bandwidth {text!r} must be positive")
    return value


def parse_rtt(text: str) -> float:
    """'0.5ms' -> 0.0005 (seconds)."""
    m = _RTT.match(text.strip())
    if not m:
        raise ParamError(f"--network RTT {text!r}: use a number with a unit such as 0.5ms, 40ms or 1s")
    return float(m.group(1)) * _TIME[m.group(2).lower()]


def parse_network(spec: str) -> Network:
    name, sep, rest = spec.partition("=")
    bw, comma, rtt = rest.partition(",")
    if not sep or not comma or not _NAME.match(name.strip()):
        raise ParamError(f"--network {spec!r}: {_HELP}")
    return Network(name.strip(), parse_bandwidth(bw), parse_rtt(rtt))


def networks(specs: Iterable[str] | None = None) -> tuple[Network, ...]:
    """The default profiles, with `specs` replacing a profile of the same name (case-insensitive) or adding one."""
    out = list(DEFAULT_NETWORKS)
    for spec in specs or ():
        net = parse_network(spec)
        same = [i for i, n in enumerate(out) if n.name.lower() == net.name.lower()]
        if same:
            out[same[0]] = net
        else:
            out.append(net)
    return tuple(out)


def human_seconds(s: float) -> str:
    """0.0123 -> '12.3 ms'; three significant digits, unit chosen to keep the number readable."""
    if s == 0:
        return "0 s"
    for limit, scale, unit in ((1e-3, 1e6, "µs"), (1.0, 1e3, "ms"), (120.0, 1.0, "s"), (7200.0, 1 / 60, "min")):
        if s < limit:
            return f"{_sig3(s * scale)} {unit}"
    return f"{_sig3(s / 3600)} h"


def _sig3(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def human_bandwidth(bps: float) -> str:
    for scale, unit in ((1e12, "Tbit/s"), (1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")):
        if bps >= scale:
            return f"{bps / scale:g} {unit}"
    return f"{bps:g} bit/s"
