"""Verified skills (issue 18): conformance of captured runs to the library's skills, and replay before promotion.

- ``runs``: which skills a run is compared with, one run's conformance report (CLI, trace API), and the
  incremental warehouse table the ``run_conformance`` asset keeps.
- ``cli``: ``skillmine conform RUN_ID``.

The alignment itself is pure and lives in ``skill_pipeline.mining.conformance``. Nothing here imports Dagster.
"""
