"""SQL text for DuckDB statements that take no parameters (COPY, sqlite_query, LOAD, ATTACH, IN lists): a leaf the
warehouse and its backends share."""

from collections.abc import Iterable


def sql_literal(text: str) -> str:
    """``text`` as an SQL string literal (for statements that take no parameters: COPY, sqlite_query, LOAD)."""
    return "'" + str(text).replace("'", "''") + "'"


def sql_list(values: Iterable[str]) -> str:
    """``values`` as a parenthesised list of SQL literals, for ``IN``. Empty is refused: ``NOT IN (NULL)`` would
    silently match nothing."""
    items = [sql_literal(v) for v in values]
    if not items:
        raise ValueError("an SQL IN list needs at least one value")
    return "(" + ", ".join(items) + ")"
