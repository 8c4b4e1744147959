"""Sending spans to an OTLP/HTTP traces endpoint (``.../v1/traces``), protobuf or JSON.

``http/protobuf`` goes through the official OTLP exporter (which retries transient failures within its timeout);
``http/json`` posts :func:`capture.otel.spans.to_otlp_json` with httpx. Without explicit headers both send those of
``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS``, as every OTLP exporter does. One :class:`OtlpTransport` keeps its connection between
sends, for the live sink; :func:`send` is one request for the store export.
"""

import json
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.re import parse_env_headers

from capture.core.settings import OTLP_PROTOCOLS
from capture.otel.spans import to_otlp_json


class OtlpTransport:
    """One OTLP/HTTP endpoint; :meth:`send` raises ``ConnectionError`` naming it when the spans were not taken."""

    def __init__(self, endpoint: str, *, protocol: str = "http/protobuf", headers: dict[str, str] | None = None,
                 timeout: float = 10.0) -> None:
        if protocol not in OTLP_PROTOCOLS:
            raise ValueError(f"protocol must be http/protobuf or http/json, got {protocol!r}")
        self.endpoint, self.protocol, self.headers, self.timeout = endpoint, protocol, headers, timeout
        self._client: Any = None

    def send(self, spans: Sequence[ReadableSpan]) -> None:
        """POST the spans in one request."""
        if self.protocol == "http/protobuf":
            from opentelemetry.sdk.trace.export import SpanExportResult

            if self._exporter().export(spans) is not SpanExportResult.SUCCESS:
                raise ConnectionError(f"{self.endpoint}: the OTLP endpoint did not accept {len(spans)} spans")
            return
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        try:
            response = self._client.post(self.endpoint, content=json.dumps(to_otlp_json(spans)).encode(),
                                         headers={"Content-Type": "application/json", **_headers(self.headers)})
        except httpx.HTTPError as exc:
            raise ConnectionError(f"{self.endpoint}: {type(exc).__name__}: {exc}") from exc
        if response.status_code // 100 != 2:
            raise ConnectionError(f"{self.endpoint}: HTTP {response.status_code}: {response.text[:200]}")

    def close(self) -> None:
        """Close the connection (the next :meth:`send` opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            (client.shutdown if self.protocol == "http/protobuf" else client.close)()

    def _exporter(self) -> Any:
        if self._client is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self._client = OTLPSpanExporter(endpoint=self.endpoint, headers=self.headers, timeout=self.timeout)
        return self._client


def _headers(given: dict[str, str] | None) -> dict[str, str]:
    """The given headers, else the OTLP environment's (the SDK exporter's own rule)."""
    if given is not None:
        return given
    raw = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or os.environ.get("OTEL_EXPORTER_OTLP_HEADERS") or ""
    return parse_env_headers(raw, liberal=True)


def send(spans: Sequence[ReadableSpan], endpoint: str, *, protocol: str = "http/protobuf",
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> None:
    """POST the spans to an OTLP/HTTP traces endpoint in one request; raises ``ConnectionError`` naming the
    endpoint when it refuses them."""
    transport = OtlpTransport(endpoint, protocol=protocol, headers=headers, timeout=timeout)
    try:
        transport.send(spans)
    finally:
        transport.close()
