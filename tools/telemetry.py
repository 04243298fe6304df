"""Optional OpenTelemetry spans for tool calls, following the GenAI semantic conventions' `execute_tool`
operation: span name `execute_tool <tool>`, attributes `gen_ai.operation.name`, `gen_ai.tool.name`,
`gen_ai.tool.type`, `error.type` on failure, plus `valuedesk.principal`, `valuedesk.surface` and
`valuedesk.result_bytes`. Arguments and results are not recorded (they may name customers).

Off unless an exporter is configured: `VALUEDESK_OTEL_ENDPOINT` (an OTLP/gRPC collector, e.g.
http://127.0.0.1:4317) or `configure(exporter=...)` (tests). The provider is ValueDesk's own, not the
process-wide global, so a host application's tracing is left alone.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_tracer: Any = None
_configured_for: str | None = None


def configure(endpoint: str | None = None, exporter: Any = None) -> None:
    """Send spans to `exporter`, or to an OTLP/gRPC collector at `endpoint` (once per process and endpoint)."""
    global _tracer, _configured_for
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    with _lock:
        if exporter is None and endpoint == _configured_for:
            return
        provider = TracerProvider(resource=Resource.create({"service.name": "valuedesk"}))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
        _tracer, _configured_for = provider.get_tracer("valuedesk.tools"), endpoint


def reset() -> None:
    global _tracer, _configured_for
    with _lock:
        _tracer, _configured_for = None, None


def record_tool_call(name: str, principal: str, surface: str, seconds_started_ns: int, ended_ns: int,
                     error: str | None, result_bytes: int) -> None:
    """One finished tool call as an `execute_tool` span (a no-op while no exporter is configured)."""
    tracer = _tracer
    if tracer is None:
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    span = tracer.start_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, start_time=seconds_started_ns)
    span.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                         "gen_ai.tool.type": "function", "valuedesk.principal": principal,
                         "valuedesk.surface": surface, "valuedesk.result_bytes": result_bytes})
    if error:
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=ended_ns)
