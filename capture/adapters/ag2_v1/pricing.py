"""LLM cost for AG2 v1, which reports tokens but no cost: a price table in USD per million tokens, overridable.

The defaults are the providers' published list prices for a few common models (standard tier, no batch or cache
discount); a model the table does not know gets no cost (``cost_source: "unpriced"``) rather than a guess. Users
set their own prices with :func:`set_prices` (or ``capture.adapters.ag2_v1.instrument(x, prices=...)``).
"""

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """USD per million prompt (input) and completion (output) tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        """The cost of one call in USD."""
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1_000_000


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-opus-4": Price(15.00, 75.00),
}

_prices: dict[str, Price] = dict(DEFAULT_PRICES)
_lock = threading.Lock()


def _as_price(value: "Price | tuple[float, float]") -> Price:
    return value if isinstance(value, Price) else Price(float(value[0]), float(value[1]))


def set_prices(prices: "dict[str, Price | tuple[float, float]]", *, replace: bool = False) -> None:
    """Add (or with ``replace``, substitute) prices: ``{"model-name": (input_usd_per_mtok, output_usd_per_mtok)}``."""
    table = {model: _as_price(price) for model, price in prices.items()}
    with _lock:
        if replace:
            _prices.clear()
        _prices.update(table)


def reset_prices() -> None:
    """Back to :data:`DEFAULT_PRICES`."""
    set_prices(DEFAULT_PRICES, replace=True)


def price_for(model: str | None) -> Price | None:
    """The price of ``model``: an exact entry, else the longest entry it starts with (``gpt-4o-2024-08-06`` is priced
    as ``gpt-4o``, ``gpt-4o-mini-…`` as ``gpt-4o-mini``), else ``None``."""
    if not model:
        return None
    with _lock:
        exact = _prices.get(model)
        if exact is not None:
            return exact
        prefixes = [name for name in _prices if model.startswith(name)]
        return _prices[max(prefixes, key=len)] if prefixes else None
