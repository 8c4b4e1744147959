"""Adapters: hooks that turn a framework's activity into capture calls (``ag2_classic`` for ``import autogen``,
``ag2_v1`` for ``import ag2`` 1.x, ``cmbagent_callbacks`` for CMBAgent's WorkflowCallbacks). Adapters import the
public API (``capture.api``) and ``capture.core``, never the store; each is imported only when first used."""

from types import ModuleType
from typing import Any


def adapter_for(target: Any) -> ModuleType:
    """The AG2 adapter module for ``target``: ``ag2_v1`` when its class comes from the ``ag2`` package (AG2 v1),
    else ``ag2_classic`` (AG2 Classic's classes live in ``autogen``)."""
    from capture.adapters import ag2_v1

    if ag2_v1.is_v1(target):
        return ag2_v1
    from capture.adapters import ag2_classic

    return ag2_classic
