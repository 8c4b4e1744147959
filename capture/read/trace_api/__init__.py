"""The trace API: read-only HTTP/JSON over the capture store, live event streaming (SSE) and a timeline page.

``reader`` turns requests into JSON-ready dicts (reusing :mod:`capture.read.queries`, :mod:`capture.read.trace`,
:mod:`capture.read.summary` and :mod:`capture.core.files`), ``stream`` follows a run's new events, ``server`` is the stdlib
HTTP server, ``tree_text`` prints a run in the terminal and ``cli`` mounts ``skillmine trace``.
"""
