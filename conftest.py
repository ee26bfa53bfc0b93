"""Repository-level pytest setup: skip doctest collection of optional bridges whose framework is absent."""

import importlib.util

collect_ignore = [f"dpgen/bridges/{name}.py" for name in ("torch", "jax") if importlib.util.find_spec(name) is None]
