"""Settings: the default data directory is per user, never the working directory."""
from __future__ import annotations

from pathlib import Path

import pytest

from diarist.infra.settings import Settings

pytestmark = pytest.mark.unit


def test_default_data_dir_is_per_user_never_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIARIST_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert Settings().data_dir == tmp_path / "home" / ".local" / "share" / "diarist"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().data_dir == tmp_path / "xdg" / "diarist"
    monkeypatch.setenv("XDG_DATA_HOME", "relative")  # invalid by the XDG spec: ignored
    assert Settings().data_dir == tmp_path / "home" / ".local" / "share" / "diarist"
    assert not Settings().data_dir.is_relative_to(tmp_path / "relative")


def test_diarist_data_dir_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("DIARIST_DATA_DIR", "here")
    assert Settings().data_dir == tmp_path / "here"
    monkeypatch.setenv("DIARIST_DATA_DIR", str(tmp_path / "there"))
    assert Settings().data_dir == Path(tmp_path / "there")
