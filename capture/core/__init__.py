"""Core: the stdlib-only leaves every other room may import (clock, configuration, context, settings, payload
encoding, the event vocabulary, redaction, file classification). Nothing here imports another capture room, so
an agent process that only records stays light."""
