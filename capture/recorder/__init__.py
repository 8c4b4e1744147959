"""The recorder: the hot path's bounded queue, the background writer thread, flush, close, fork and SIGTERM
handling. It knows its sink only through :class:`capture.sinks.base.Sink`."""
