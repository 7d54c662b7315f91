"""Fixtures for the cross-package tests: real fake distributions on sys.path, clean env."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No SESSIONHUB_* variable and no config file of the developer's leaks into a test."""
    import os

    for key in list(os.environ):
        if key.startswith("SESSIONHUB_"):
            monkeypatch.delenv(key)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


class Site:
    """A directory on sys.path where tests install tiny real distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def install(
        self, dist: str, modules: dict[str, str], entry_points: dict[str, str], version: str = "1.0"
    ) -> None:
        """Write modules and a dist-info with [sessionhub] entry points."""
        for name, source in modules.items():
            path = self.root / (name.replace(".", "/") + ".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
            self.modules.append(name)
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[sessionhub]\n{lines}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    s = Site(root)
    yield s
    for name in s.modules:
        sys.modules.pop(name, None)
