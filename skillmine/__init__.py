"""The `skillmine` command: one CLI that mounts the subcommands of each part.

Each part exposes ``register(subparsers)`` in its own ``cli`` module. Registration imports nothing heavy:
handlers import Dagster, DuckDB or AG2 lazily, so ``skillmine skills list`` starts fast.
"""
