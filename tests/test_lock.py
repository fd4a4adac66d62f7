"""requirements.lock is what `make install` installs: it must satisfy pyproject's ranges, and be what is installed."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.split(";", 1)[0].strip()
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_the_lock_satisfies_every_range_in_pyproject() -> None:
    locked = _locked()
    stale = [f"{req} (locked: {locked.get(canonicalize_name(req.name), 'missing')})" for req in _declared()
             if (req.marker is None or req.marker.evaluate())
             and not req.specifier.contains(locked.get(canonicalize_name(req.name), "0+missing"), prereleases=True)]
    assert not stale, f"pyproject.toml changed without `make lock`: {stale}"


def test_the_llama_cpp_build_is_the_version_pyproject_names() -> None:
    from assistant.models import llama_build

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["llama"] == [llama_build.REQUIREMENT]
    assert canonicalize_name("llama-cpp-python") not in _locked()  # built per CPU by make install, not synced


def test_the_installed_environment_is_exactly_the_lock() -> None:
    drift = {name: (version, metadata.version(name)) for name, version in _locked().items()
             if metadata.version(name) != version}
    assert not drift, f"installed versions differ from requirements.lock (locked, installed): {drift}"
