"""The read side: trace queries (``queries``, ``trace``, ``files``), node execution summaries (``summary``) and
the trace API (``trace_api``: HTTP/JSON, live SSE streaming, the timeline page). It imports the store and core
rooms; nothing on the write path imports it."""
