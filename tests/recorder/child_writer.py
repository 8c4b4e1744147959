"""A workflow process for the durability tests: records events in a loop and reports each one on stdout.

Usage: ``python child_writer.py URL SPOOL_DIR FLUSH_INTERVAL_S [EVENTS_PER_S [STOP_AFTER]]`` (rate 0 or absent: as
fast as possible; STOP_AFTER > 0: return normally after that many events, without calling flush). Each line is the id
of an event that was enqueued before the line was written, so the parent can compare what the child reported with
what landed; every ``REPORT_EVERY`` events a line ``durable N`` says how many recorder items the writer had made
durable by then (written to the database or fsynced into the spool): a kill may lose only what came after.
"""

import sys
import time

import capture
from capture.core.settings import CaptureSettings

REPORT_EVERY = 100


def main() -> None:
    url, spool_dir, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rate = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    stop_after = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    capture.configure(CaptureSettings(database_url=url, spool_dir=spool_dir, flush_interval_s=interval))
    out = sys.stdout
    with capture.run("child"):
        index = 0
        started = time.monotonic()
        while not stop_after or index < stop_after:
            if rate and index % 20 == 0:
                ahead = index / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            event_id = capture.record_event("info", "trace", meta={"i": index})
            out.write(f"{event_id}\n")
            if index % REPORT_EVERY == 0:
                stats = capture.stats()
                out.write(f"durable {stats['written'] + stats['spooled']}\n")
            out.flush()
            index += 1


if __name__ == "__main__":
    main()
