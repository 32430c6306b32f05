"""Digital sobriety of a gateway: what its link and power allow, and what sending costs.

The link profile (ethernet, Wi-Fi, cellular with a daily byte budget, LoRa-class duty cycle)
and the power supply (mains, or solar with a battery level read from a file or a command)
steer the agent: how long batches may wait, whether data may be sent now, how often simulated
sensors sample. Every send is accounted: bytes, messages, radio wake-ups and an estimated
energy from the model below (documented in docs/edge.md):

    energy = wake-ups × E_wake + messages × E_message + bytes × E_byte

A *wake-up* is a send after the radio has been idle longer than its tail time (an LTE RRC
inactivity timer, Wi-Fi power save); each LoRa message is its own wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bocage.core.logs import get_logger
from bocage.edge.counters import Counters
from bocage.edge.settings import LinkSection, PowerSection

log = get_logger("bocage.edge.sobriety")

DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class RadioModel:
    """Energy constants of a link kind (orders of magnitude from datasheets and measurements
    cited in docs/edge.md; they estimate, they do not measure)."""

    wake_mj: float
    """Energy of one wake-up: connection set-up plus the idle tail before sleep."""
    message_mj: float
    """Fixed cost per message (headers, acknowledgement round trip)."""
    byte_uj: float
    """Marginal energy per payload byte."""
    tail_s: float
    """Idle time after which the next send counts as a new wake-up."""
    bitrate_bps: float
    """Default bitrate, for LoRa airtime."""
    batch_age_factor: float
    """How much longer batches may wait than ``batch.max_age_s`` on this link."""


RADIO_MODELS: dict[str, RadioModel] = {
    # always-on PHY: only the marginal cost of the bytes counts
    "ethernet": RadioModel(0.0, 0.01, 0.05, float("inf"), 100e6, 1.0),
    # Wi-Fi power-save: ~100 ms awake at ~200 mW per wake-up
    "wifi": RadioModel(20.0, 1.0, 0.2, 0.5, 20e6, 1.0),
    # LTE-M / NB-IoT: RRC connection + ~10 s inactivity tail at ~100 mW
    "cellular": RadioModel(1000.0, 20.0, 5.0, 10.0, 300e3, 6.0),
    # LoRa SF7/125 kHz: ~5.5 kbit/s at ~130 mW while transmitting
    "lora": RadioModel(10.0, 2.6, 190.0, 0.0, 5470.0, 30.0),
}


class Sobriety:
    """Link and power state of one gateway, and the accounting of what it sends."""

    def __init__(self, link: LinkSection, power: PowerSection, counters: Counters) -> None:
        self.link = link
        self.power = power
        self.counters = counters
        self.model = RADIO_MODELS[link.kind]
        self.bitrate = link.bitrate_bps or self.model.bitrate_bps
        self._last_send = -float("inf")
        self._day = int(time.time() // DAY_S)
        self.bytes_today = 0
        self._airtime_until = 0.0
        self.battery_pct: float | None = None

    @property
    def low_power(self) -> bool:
        """True on solar with the battery under its threshold: batch longer, sample less."""
        return (
            self.power.kind == "solar"
            and self.battery_pct is not None
            and self.battery_pct < self.power.low_battery_pct
        )

    def batch_age_s(self, max_age_s: float) -> float:
        """How long a batch may wait on this link and power state."""
        factor = self.model.batch_age_factor * (4.0 if self.low_power else 1.0)
        return max_age_s * factor

    def sampling_factor(self) -> float:
        """Multiplier of live sampling intervals (2 on low battery)."""
        return 2.0 if self.low_power else 1.0

    def _roll_day(self) -> None:
        day = int(time.time() // DAY_S)
        if day != self._day:
            self._day = day
            self.bytes_today = 0

    def may_send(self, nbytes: int, *, urgent: bool = False) -> bool:
        """True if the daily byte budget allows ``nbytes`` more (alarms are always allowed)."""
        self._roll_day()
        budget = self.link.daily_budget_bytes
        return urgent or not budget or self.bytes_today + nbytes <= budget

    def airtime_wait_s(self) -> float:
        """Seconds to wait before the radio may transmit again (LoRa duty cycle)."""
        return max(0.0, self._airtime_until - time.monotonic())

    def sent(self, nbytes: int, messages: int = 1) -> None:
        """Account one send burst of ``messages`` messages totalling ``nbytes``."""
        now = time.monotonic()
        self._roll_day()
        model = self.model
        counters = self.counters
        wakeups = messages if self.link.kind == "lora" else int(
            now - self._last_send > model.tail_s
        )
        self._last_send = now
        counters.radio_wakeups += wakeups
        counters.bytes_sent += nbytes
        counters.messages_sent += messages
        self.bytes_today += nbytes
        counters.energy_mj += (
            wakeups * model.wake_mj + messages * model.message_mj + nbytes * model.byte_uj / 1000
        )
        if self.link.kind == "lora":
            airtime = nbytes * 8 / self.bitrate
            duty = min(1.0, max(1e-4, self.link.duty_cycle))
            self._airtime_until = now + airtime / duty

    async def read_battery(self) -> float | None:
        """Read the battery level (percent) from the configured file or command."""
        value: float | None = None
        if self.power.battery_file:
            with contextlib.suppress(OSError, ValueError):
                text = await asyncio.to_thread(Path(self.power.battery_file).read_text)
                value = float(text.strip())
        elif self.power.battery_command:
            try:
                out = await asyncio.to_thread(
                    subprocess.run, self.power.battery_command, capture_output=True,
                    text=True, timeout=10, check=True,
                )
                value = float(out.stdout.strip())
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                log.warning("battery command failed", error=str(exc))
        if value is not None:
            self.battery_pct = max(0.0, min(100.0, value))
            self.counters.battery_pct = self.battery_pct
        return self.battery_pct
