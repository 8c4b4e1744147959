"""The sink ``settings.sink`` names, built on the recorder's writer thread (so each sink's libraries load there).

``store`` (default): the capture store (:class:`~capture.sinks.store_sink.StoreSink`); ``otlp``: live OTLP/HTTP
export only (:class:`~capture.sinks.otlp_sink.OtlpSink`, needs the ``skillmine[otel]`` extra); ``store+otlp``: both,
the store first (:class:`~capture.sinks.tee.TeeSink`).
"""

from collections.abc import Callable

from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings
from capture.sinks.base import Sink


def configured_sink(settings: CaptureSettings, redactor: Redactor,
                    on_error: Callable[[str, BaseException | str], None]) -> Sink:
    """A new sink of the kind ``settings.sink`` names (imported here, not when the recorder is)."""
    store = live = None
    if "store" in settings.sink:
        from capture.sinks.store_sink import StoreSink

        store = StoreSink(settings, redactor, on_error)
    if "otlp" in settings.sink:
        from capture.sinks.otlp_sink import OtlpSink

        live = OtlpSink(settings, redactor, on_error)
    if store is None or live is None:
        return store or live
    from capture.sinks.tee import TeeSink

    return TeeSink(store, live)
