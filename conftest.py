"""Repository-level pytest setup: skip doctest collection of optional bridges whose framework is absent."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["dpgen/bridges/torch.py"]
