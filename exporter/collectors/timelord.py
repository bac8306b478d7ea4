"""Timelord: VDF speed, compact proofs, peaks. Events only (its RPC has nothing more to say).

Consumes ``finished_pot``, ``new_compact_proof``, ``skipping_peak`` and ``new_peak`` from
``chia_timelord``. Example::

    chia_timelord_estimated_ips 180000.0
    chia_timelord_compact_proofs_total{field="cc_sp_vdf"} 12.0
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import Metric

from exporter.collectors.base import EventState, as_float, as_int, counter_family, gauge

# Chia's CompressibleVDFField numbers (chia/protocols/timelord_protocol.py).
VDF_FIELDS = {1: "cc_eos_vdf", 2: "icc_eos_vdf", 3: "cc_sp_vdf", 4: "cc_ip_vdf"}
# The chain a finished proof of time belongs to (Chain enum in chia/timelord/types.py).
CHAINS = {1: "challenge", 2: "reward", 3: "infused_challenge", 4: "bluebox"}


class TimelordEvents(EventState):
    origin = "chia_timelord"
    commands = frozenset({"finished_pot", "new_compact_proof", "skipping_peak", "new_peak"})

    def __init__(self) -> None:
        self.estimated_ips: float | None = None
        self.proofs_of_time: dict[str, int] = {}
        self.compact_proofs: dict[str, int] = dict.fromkeys(VDF_FIELDS.values(), 0)
        self.peaks = {"new": 0, "skipped": 0}
        self.last_peak_height: int | None = None

    def handle(self, command: str, data: dict, now: float) -> None:
        if command == "finished_pot":
            ips = as_float(data["estimated_ips"])
            chain = data.get("chain")
            name = CHAINS.get(chain, str(chain)) if isinstance(chain, int) else "unknown"
            if name not in self.proofs_of_time and len(self.proofs_of_time) >= 8:
                name = "unknown"  # keep the label bounded whatever the field holds
            self.estimated_ips = ips
            self.proofs_of_time[name] = self.proofs_of_time.get(name, 0) + 1
        elif command == "new_compact_proof":
            field = VDF_FIELDS.get(as_int(data["field_vdf"]), "unknown")
            self.compact_proofs[field] = self.compact_proofs.get(field, 0) + 1
        else:
            height = as_int(data["height"])
            self.peaks["new" if command == "new_peak" else "skipped"] += 1
            self.last_peak_height = height

    def render(self, now: float) -> Iterator[Metric]:
        if self.estimated_ips is not None:
            yield gauge("chia_timelord_estimated_ips", "VDF iterations per second the timelord last estimated (finished_pot estimated_ips).",
                        self.estimated_ips)
        yield counter_family("chia_timelord_proofs_of_time", "Proofs of time the timelord finished, by chain (finished_pot).",
                             ["chain"], (((k,), v) for k, v in sorted(self.proofs_of_time.items())))
        yield counter_family("chia_timelord_compact_proofs", "Compact (bluebox) proofs made, by VDF field (new_compact_proof field_vdf).",
                             ["field"], (((k,), v) for k, v in sorted(self.compact_proofs.items())))
        yield counter_family("chia_timelord_peaks", "Peaks the timelord was given: new ones it works on, or skipped as already "
                             "infused (new_peak, skipping_peak).", ["result"], (((k,), v) for k, v in sorted(self.peaks.items())))
        if self.last_peak_height is not None:
            yield gauge("chia_timelord_last_peak_height", "Height of the last peak the timelord was given (new_peak, skipping_peak).",
                        self.last_peak_height)


def make_event_states(config, exporter) -> list[EventState]:
    return [TimelordEvents()]
