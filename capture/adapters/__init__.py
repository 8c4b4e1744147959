"""Adapters: hooks that turn a framework's activity into capture calls (``ag2_classic`` for ``import autogen``,
``cmbagent_callbacks`` for CMBAgent's WorkflowCallbacks). Adapters import the public API (``capture.api``) and
``capture.core``, never the store; each is imported only when first used."""
