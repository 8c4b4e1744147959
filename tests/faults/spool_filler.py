"""A workflow process whose database is down and whose spool runs out of room: it records events to the end and
prints the recorder's figures as JSON.

Usage: ``python spool_filler.py URL SPOOL_DIR EVENTS PAYLOAD_BYTES FILE_SIZE_LIMIT`` (limit 0: none; else the
process may write files of at most that many bytes, as on a full disk, via ``RLIMIT_FSIZE``).
"""

import json
import resource
import signal
import sys

import capture
from capture.core.settings import CaptureSettings


def main() -> None:
    url, spool_dir, events, payload, limit = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    capture.configure(CaptureSettings(database_url=url, spool_dir=spool_dir, flush_interval_s=0.02,
                                      batch_size=20))
    recorded = 0
    with capture.run("spool on a full disk"):
        for i in range(events):
            capture.record_event("info", "trace", meta={"i": i, "pad": "x" * payload})
            recorded += 1
            if i % 20 == 19:
                capture.flush(5)
    capture.flush(5)
    stats = capture.stats()
    print(json.dumps({"recorded": recorded, **{k: stats[k] for k in ("enqueued", "spooled", "dropped", "errors")}}),
          flush=True)
    capture.shutdown()


if __name__ == "__main__":
    main()
