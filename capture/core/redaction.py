"""Secret masking applied to every string of a record before it reaches the spool or the database.

One compiled alternation covers the built-in patterns (provider API keys and Hugging Face ``hf_`` tokens, JWTs,
PEM private-key blocks, bearer tokens, ``Authorization`` headers, passwords in connection URLs, also with an empty
user as in ``redis://:pw@host``, ``api_key=`` / ``"password": "..."`` / ``Password=...;`` style assignments) plus
any configured extra patterns. Capture and every importer apply the same redactor before anything is stored. Where a pattern has a keep-prefix (``api_key=``, ``Bearer ``, ``user:`` in a URL) only the secret part
becomes ``***``. Dict values under sensitive key names (``api_key``, ``password``, ``token``...) are masked whole.
Strings shorter than the shortest secret are skipped without running the regex.
"""

import math
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
# Token patterns start where no letter or digit precedes (``\b`` would miss a key glued on by ``_``, as in
# ``engineer_sk-...`` once spaces became underscores).
MIN_SECRET_CHARS = 8
# Redactor.text remembers results for strings up to this long, at most this many at a time (~5 MB at most).
MEMO_MAX_CHARS = 160
MEMO_ENTRIES = 16_384

# (keep-prefix regex or None, secret regex). The prefix is kept, the secret is masked.
_BUILTIN: tuple[tuple[str | None, str], ...] = (
    (None, r"(?<![A-Za-z0-9])sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}"),
    (None, r"(?<![A-Za-z0-9])AKIA[0-9A-Z]{16}\b"),
    (None, r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{20,}"),
    (None, r"(?<![A-Za-z0-9])xox[bpoas]-[A-Za-z0-9\-]{10,}"),
    (None, r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_\-]{30,}"),
    (None, r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}"),
    (None, r"(?<![A-Za-z0-9])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", r"[\s\S]+?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    (r"(?i:\bbearer\s+)", r"[A-Za-z0-9._~+/=\-]{8,}"),
    (r"(?i:\bauthorization\b[\"']?\s*[:=]\s*[\"']?)", r"(?!(?i:bearer\s))[^\s\"',;][^\r\n\"',;]{3,}"),
    (r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:", r"[^@\s/]+(?=@)"),
    ((r"(?i:\b(?:api[_\-]?key|apikey|access[_\-]?key|secret[_\-]?key|client[_\-]?secret|password|passwd|pwd|secret"
     r"|token|access[_\-]?token|refresh[_\-]?token|auth[_\-]?token)[\"']?\s*[:=]\s*[\"']?)"),
     r"(?!\*\*\*)[^\s\"',;&}\]]+"),
)

# Every built-in pattern but the key-name assignments contains one of these (lower-cased); a string without any
# is skipped cheaply.
_TRIGGERS = ("sk-", "akia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "aiza", "hf_", "eyj", "private key",
             "bearer", "authorization", "://")
# The assignment pattern's key names all end in one of these words, and an assignment follows them: the words
# alone are common (``prompt_tokens``, ``keys``, ``passes``), so the regex runs only where one is assigned to.
_KEY_WORDS = ("key", "pass", "pwd", "secret", "token")
_ASSIGNED = re.compile(r"(?:key|pass(?:word|wd)?|pwd|secret|token)[\"']?\s*[:=]")

SENSITIVE_KEY = re.compile(
    r"(?i)^(?:api[_\-]?key|apikey|access[_\-]?key|secret[_\-]?key|client[_\-]?secret|password|passwd|pwd|secret"
    r"|token|access[_\-]?token|refresh[_\-]?token|auth[_\-]?token|authorization)$")


class Redactor:
    """Masks secrets in strings and nested JSON-like values (dicts, lists, tuples)."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        parts = []
        self._prefix_groups: list[str] = []
        for index, (prefix, secret) in enumerate(_BUILTIN):
            if prefix is None:
                parts.append(secret)
            else:
                group = f"p{index}"
                self._prefix_groups.append(group)
                parts.append(f"(?P<{group}>{prefix}){secret}")
        for extra in extra_patterns:
            try:
                re.compile(extra)
            except re.error as exc:
                raise ValueError(f"redaction pattern {extra!r} is not a valid regular expression: {exc}") from None
            parts.append(f"(?:{extra})")
        self._regex = re.compile("|".join(parts))
        self._always_scan = bool(parts[len(_BUILTIN):])
        self._memo: dict[str, str] = {}  # short string -> masked; emptied when full (thread-safe: single dict ops)

    def _replace(self, match: re.Match[str]) -> str:
        for group in self._prefix_groups:
            kept = match.group(group)
            if kept is not None:
                return kept + MASK
        return MASK

    def text(self, value: str) -> str:
        """``value`` with every secret masked. Short strings are remembered: a bulk source repeats a few thousand
        names, labels and ids millions of times (an XES log: 1.9 million strings, 0.5% distinct), and a look-up
        costs a fraction of the scan."""
        if len(value) < MIN_SECRET_CHARS:
            return value
        done = self._memo.get(value)
        if done is not None:
            return done
        masked = self._scan(value)
        if len(value) <= MEMO_MAX_CHARS:
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()
            self._memo[value] = masked
        return masked

    def _scan(self, value: str) -> str:
        if not self._always_scan:
            lowered = value.lower()
            if not (any(trigger in lowered for trigger in _TRIGGERS)
                    or any(word in lowered for word in _KEY_WORDS) and _ASSIGNED.search(lowered)):
                return value
        return self._regex.sub(self._replace, value)

    def flat(self, value: dict, max_chars: int) -> dict | None:
        """The fast path for the common payload: a flat dict of JSON scalars whose strings total at most
        ``max_chars``, returned redacted; ``None`` when ``value`` is anything else (use encode + :meth:`value`)."""
        out = {}
        total = 0
        for key, item in value.items():
            if type(key) is not str:
                return None
            kind = type(item)
            if kind is str:
                total += len(item)
                if total > max_chars:
                    return None
                out[key] = MASK if item and SENSITIVE_KEY.match(key) else self.text(item)
            elif kind is int or kind is bool or item is None or (kind is float and math.isfinite(item)):
                out[key] = MASK if kind is int and SENSITIVE_KEY.match(key) else item
            else:
                return None
        return out

    def value(self, value: Any) -> Any:
        """Mask secrets anywhere in a JSON-like value; other objects are returned unchanged."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: (MASK if isinstance(k, str) and isinstance(v, (str, int)) and v != "" and SENSITIVE_KEY.match(k)
                        else self.value(v)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value
