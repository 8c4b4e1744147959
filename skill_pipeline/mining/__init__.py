"""Pure mining core: events -> token sequences -> clusters -> patterns -> skill templates.

Plain functions over plain data (dicts, lists, dataclasses). Nothing here imports Dagster;
the Dagster assets in ``skill_pipeline.defs`` are thin wrappers around these functions.

Modules:
- ``tokens``: token sequences per run / per node from execution events.
- ``clustering``: variant dedup + repeat collapsing + sample HAC + medoid assignment.
- ``patterns``: consensus step sequence (optional steps, repeat blocks) per cluster.
- ``templates``: parameterised task template, expected outputs, statistics, skill candidate dict.
- ``outcomes``: success / failure analysis across runs.
- ``stats``: Wilson interval, percentiles, failure hot-spots.
- ``baseline``: the MARS stage-4 reference algorithms (PatternMatcher / auto_discover_skills).
- ``quality``: scoring against ground truth (ARI, step and slot precision/recall, CI coverage).
- ``synthetic``: planted agent-like sequences for tests and benchmarks.
"""
