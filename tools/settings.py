"""Serving and security settings: what the HTTP API and the MCP server add to the core's settings.

Read from the same VALUEDESK_ environment variables, once per process, by valuedesk.config.load_settings.
"""

from __future__ import annotations

from pydantic import Field

from predictor.settings import Settings


class ServingSettings(Settings):
    api_key: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_body_bytes: int = 1_000_000
    otel_endpoint: str | None = Field(None, description=(
        "OTLP/gRPC collector (e.g. http://127.0.0.1:4317): every tool call is also an OpenTelemetry "
        "`execute_tool` span (tools/telemetry.py). Unset: no spans."))
    max_json_depth: int = Field(64, ge=2, le=512, description=(
        "Deepest nesting of arrays/objects a request body (HTTP) or message (MCP stdio) may have."))
