"""Shared fixtures."""

import pytest


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A private, empty dpgen cache folder for this test (in-process and subprocesses)."""
    from dpgen.config import config

    folder = tmp_path / "cache"
    monkeypatch.setattr(config, "cache_dir", folder)
    monkeypatch.setenv("DPGEN_CACHE_DIR", str(folder))
    return folder
