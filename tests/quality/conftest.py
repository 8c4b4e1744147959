"""The quality tests examine the miner with the external workload, which lives under ``benchmarks/`` (not an
installed package): put the repository root on the import path."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
