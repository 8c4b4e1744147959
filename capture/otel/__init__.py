"""OpenTelemetry: skillmine's events as GenAI spans, and sending them over OTLP/HTTP.

The one room of ``capture`` that imports the OpenTelemetry SDK (the ``skillmine[otel]`` extra). It imports only
``capture.core``; the store reader (``capture.read.otlp_export``) and the live recorder sink
(``capture.sinks.otlp_sink``) both build their spans here, so a run exported from the store and a run exported as it
was recorded are the same spans. Nothing on the recorder's hot path imports this room.
"""
