"""Tracing: a frame's trace from the gateway (derived from its frame id, or a ``traceparent``
header when the gateway sends one) -> JetStream -> ingest spans, and the off-by-default setup.

Real components: the edge forwarder publishing from its spool to the session's nats-server,
the Ingestor consuming into chDB; spans collected with the SDK's in-memory exporter.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
from ingest_helpers import TERRITORY, eventually, make_frame, now_ms, publish_frame
from nats.aio.client import Client as NatsClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_ingest_flow import FAST, drained, rows, running

from bocage.core import subjects, tracecontext
from bocage.core.natsserver import EmbeddedNats
from bocage.core.register import Register
from bocage.datacenter.tracing import service_name, setup_tracing, tracing_configured
from bocage.edge.counters import Counters
from bocage.edge.forwarder import Forwarder
from bocage.edge.settings import EdgeSettings
from bocage.edge.sobriety import Sobriety
from bocage.edge.spool import RecordKind, Spool
from bocage.ingest import Ingestor
from bocage.store import Store


def memory_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def forward(
    tmp_path: Path, url: str, frames: int, *, traceparent: bool = False, gateway: str = "gw0"
) -> tuple[list[str], Counters]:
    """Spool ``frames`` frames and let the real forwarder publish them; their ids, counters."""
    settings = msgspec.convert(
        {
            "gateway": {
                "id": gateway, "territory": TERRITORY, "latitude": 48.1, "longitude": -1.6
            },
            "nats": {"url": url, "backoff_initial_s": 0.05, "backoff_max_s": 0.5},
            "spool": {"dir": str(tmp_path / "spool"), "fsync": "never"},
            "forward": {"drain_rate": 0, "reconnect_jitter_s": 0, "traceparent": traceparent},
            "sensors": [],
        },
        EdgeSettings,
    )
    counters = Counters()
    spool = Spool(settings.spool.dir, fsync="never", counters=counters)
    ids = []
    payload_bytes = 0
    for _ in range(frames):
        seq = spool.next_sequence()
        payload = make_frame(gateway, seq)
        payload_bytes += len(payload)
        spool.append(RecordKind.FRAME, payload, seq=seq, readings=40, time_ms=now_ms())
        ids.append(f"{TERRITORY}:{gateway}:{seq}")
    sobriety = Sobriety(settings.link, settings.power, counters)
    forwarder = Forwarder(settings, spool, counters, sobriety)
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))
    forwarder.wake.set()
    try:
        await eventually(lambda: counters.frames_delivered == frames, what="frames forwarded")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        spool.close()
    # what the gateway accounts on the wire: payloads, then protocol bytes per message
    overhead = (counters.bytes_sent - payload_bytes) / frames
    assert overhead == (90 + 70 if traceparent else 90), overhead
    return ids, counters


async def stream_headers(nc: NatsClient) -> dict[str, dict[str, str]]:
    """Headers of every message in the stream, by Nats-Msg-Id."""
    js = nc.jetstream()
    info = await js.stream_info(subjects.STREAM)
    found = {}
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(subjects.STREAM, seq)
        headers = dict(msg.headers or {})
        found[headers[subjects.MSG_ID_HEADER]] = headers
    return found


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_forwarded_frames_are_traced_through_ingest(
    tmp_path: Path, nats_server: EmbeddedNats, store: Store, register: Register, nc: NatsClient
) -> None:
    # gw0 sends no header (the default), gw1 stamps a traceparent on what it publishes
    frame_ids, _ = await forward(tmp_path / "gw0", nats_server.url, 3)
    stamped_ids, _ = await forward(
        tmp_path / "gw1", nats_server.url, 2, traceparent=True, gateway="gw1"
    )
    js = nc.jetstream()
    # from other paths: a frame without any header but its id, one with a malformed header
    await publish_frame(js, make_frame("gw2", 1))
    bad = make_frame("gw2", 2)
    await js.publish(
        subjects.subject(TERRITORY, "gw2", "frames"),
        bad,
        headers={subjects.MSG_ID_HEADER: f"{TERRITORY}:gw2:2", "traceparent": "00-nonsense-01"},
    )
    headers = await stream_headers(nc)
    # the header costs bytes on the wire (accounted, see `forward`): only stamped frames have it
    assert all("traceparent" not in headers[i] for i in frame_ids)
    parents = {}
    for frame_id in stamped_ids:
        parent = tracecontext.parse_traceparent(headers[frame_id]["traceparent"])
        assert parent is not None, headers[frame_id]
        assert parent.trace_id == tracecontext.frame_trace_id(frame_id)
        parents[frame_id] = parent
    # without a usable header, the trace comes from the frame id
    for frame_id in [*frame_ids, f"{TERRITORY}:gw2:1", f"{TERRITORY}:gw2:2"]:
        parents[frame_id] = tracecontext.message_parent(frame_id)
        assert parents[frame_id].trace_id == tracecontext.frame_trace_id(frame_id)

    provider, exporter = memory_provider()
    async with running(Ingestor(FAST, store, register, nc, tracer_provider=provider)):
        await eventually(lambda: drained(nc), what="consumer drained")
    assert rows(store) == 7 * 40  # every frame stored, header or not

    def spans() -> tuple[ReadableSpan, ...]:
        return exporter.get_finished_spans()

    await eventually(lambda: len(by_name(spans(), "ingest message")) >= 7, what="spans")
    finished = spans()
    messages = by_name(finished, "ingest message")
    # every frame: one span each, in the frame's trace, child of its (remote) publish
    assert sorted(s.attributes["messaging.message.id"] for s in messages) == sorted(parents)
    batches = {s.context.span_id: s for s in by_name(finished, "ingest batch")}
    for span in messages:
        parent = parents[span.attributes["messaging.message.id"]]
        assert f"{span.context.trace_id:032x}" == parent.trace_id
        assert span.parent is not None
        assert span.parent.is_remote
        assert f"{span.parent.span_id:016x}" == parent.span_id
        assert span.kind == trace.SpanKind.CONSUMER
        assert span.attributes["bocage.outcome"] == "frame"
        # ... and linked to the batch span where the shared work is detailed
        (link,) = span.links
        assert link.context.span_id in batches
    # the batch spans: what was done, with stage children, in their own trace
    assert sum(b.attributes["bocage.rows_inserted"] for b in batches.values()) == 7 * 40
    assert sum(b.attributes["bocage.frames"] for b in batches.values()) == 7
    assert sum(b.attributes["bocage.traceparent.linked"] for b in batches.values()) == 2
    assert sum(b.attributes["bocage.traceparent.derived"] for b in batches.values()) == 5
    assert sum(b.attributes["bocage.traceparent.missing"] for b in batches.values()) == 0
    assert sum(b.attributes["bocage.traceparent.invalid"] for b in batches.values()) == 1
    assert all(b.attributes["bocage.acked"] for b in batches.values())
    gateway_traces = {f"{s.context.trace_id:032x}" for s in messages}
    for batch in batches.values():
        assert batch.parent is None
        assert f"{batch.context.trace_id:032x}" not in gateway_traces
        children = {
            s.name
            for s in finished
            if s.parent is not None and s.parent.span_id == batch.context.span_id
        }
        assert {"decode and check", "ack"} <= children
    inserts = by_name(finished, "insert frames")
    assert sum(s.attributes["bocage.rows_inserted"] for s in inserts) == 7 * 40
    assert all(s.parent.span_id in batches for s in inserts)


async def test_a_resent_frame_keeps_its_trace_id(
    tmp_path: Path, nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    """The same spooled frame published twice (as after a lost acknowledgement): both
    publications carry the frame's trace id, each with its own span id."""
    seen: list[dict[str, str]] = []

    async def collect(msg) -> None:  # a core subscription sees every publication
        seen.append(dict(msg.headers or {}))

    sub = await nc.subscribe(subjects.subject(TERRITORY, "gw0", "frames"), cb=collect)
    await nc.flush()
    first, _ = await forward(tmp_path / "a", nats_server.url, 1, traceparent=True)
    # a fresh spool: same frame id
    again, _ = await forward(tmp_path / "b", nats_server.url, 1, traceparent=True)
    assert first == again
    await eventually(lambda: len(seen) == 2, what="both publications")
    await sub.unsubscribe()
    parsed = [tracecontext.parse_traceparent(h["traceparent"]) for h in seen]
    assert all(p is not None for p in parsed)
    assert {p.trace_id for p in parsed} == {tracecontext.frame_trace_id(first[0])}
    assert len({p.span_id for p in parsed}) == 2
    assert {h[subjects.MSG_ID_HEADER] for h in seen} == set(first)


def test_tracing_is_off_without_otel_variables() -> None:
    assert not tracing_configured({})
    assert not tracing_configured({"OTEL_TRACES_EXPORTER": "none",
                                   "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert tracing_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"})
    assert tracing_configured({"OTEL_TRACES_EXPORTER": "otlp"})
    assert setup_tracing(["ingest"], {}) is None


def test_service_names() -> None:
    assert service_name(["ingest"], {}) == "bocage-ingest"
    assert service_name(["api"], {}) == "bocage-api"
    assert service_name(["indicators"], {}) == "bocage-indicators"
    assert service_name(["ingest", "indicators", "api"], {}) == "bocage-datacenter"
    assert service_name(["api"], {"OTEL_SERVICE_NAME": "edge-api"}) == "edge-api"


SETUP = """
import json, sys
from opentelemetry import trace
from bocage.datacenter.tracing import setup_tracing, shutdown_tracing
services = sys.argv[1].split(",")
provider = setup_tracing(services)
installed = trace.get_tracer_provider()
print(json.dumps({
    "returned": provider is not None,
    "global": type(installed).__name__,
    "service": getattr(installed, "resource", None)
               and installed.resource.attributes.get("service.name"),
    "processors": [type(p).__name__ for p in
                   getattr(getattr(installed, "_active_span_processor", None),
                           "_span_processors", ())],
}))
shutdown_tracing(provider)
"""


def run_setup(services: str, **env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", SETUP, services],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_setup_installs_nothing_without_otel_variables() -> None:
    """`bocage serve`'s setup, in a fresh process: the global provider stays the no-op proxy."""
    result = run_setup("ingest,indicators,api")
    assert result == {"returned": False, "global": "ProxyTracerProvider", "service": None,
                      "processors": []}


def test_setup_installs_a_batching_otlp_provider_when_configured() -> None:
    result = run_setup("ingest", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert result == {"returned": True, "global": "TracerProvider",
                      "service": "bocage-ingest", "processors": ["BatchSpanProcessor"]}
    result = run_setup("ingest,indicators,api", OTEL_TRACES_EXPORTER="otlp")
    assert result["service"] == "bocage-datacenter"
    result = run_setup("api", OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="dc-api")
    assert result["service"] == "dc-api"
