"""Plain helpers of the pipeline (no Dagster import): warehouse access, extraction, charts, previews."""
