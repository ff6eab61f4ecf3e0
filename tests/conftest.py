"""Pytest configuration; peer helpers live in ``peers.py``."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test gets its own data directory: the audit log and the failed-login
    record never touch the user's, and tests never see each other's."""
    folder = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(folder))
    return folder
