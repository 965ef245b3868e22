"""Settings: the default data directory is per user, never the working directory; DIARIST_URL_ALLOW."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diarist.infra.settings import Settings
from diarist.streams.urls import Allowlist

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


def test_url_allow_is_parsed_from_the_environment(monkeypatch):
    monkeypatch.delenv("DIARIST_URL_ALLOW", raising=False)
    assert Settings().url_allow() == Allowlist()  # by default nothing private is allowed
    monkeypatch.setenv("DIARIST_URL_ALLOW", "127.0.0.0/8, media.internal ,10.1.2.3")
    allow = Settings().url_allow()
    assert allow.allows_name("media.internal") and allow.allows_address(ipaddress.ip_address("10.1.2.3"))
    assert allow.allows_address(ipaddress.ip_address("127.0.0.2"))
    assert not allow.allows_address(ipaddress.ip_address("10.1.2.4"))


@pytest.mark.parametrize("role", ["worker", "inference", "up"])
def test_a_bad_url_allow_entry_stops_startup_naming_it(tmp_path, role):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIARIST_")}
    env.update(DIARIST_DATA_DIR=str(tmp_path), DIARIST_URL_ALLOW="10.0.0.0/8,not a host",
               DIARIST_BOOTSTRAP_SERVERS="127.0.0.1:9")  # never reached
    started = subprocess.run([sys.executable, "-P", "-m", "diarist.cli", role], env=env, capture_output=True,
                             text=True, timeout=60)
    assert started.returncode == 1
    assert started.stderr.strip() == ("diarist: DIARIST_URL_ALLOW: 'not a host' is neither a CIDR nor a host name "
                                      "(invalid host name)")
