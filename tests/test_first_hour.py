"""The first hour: the set-up scripts choose a Python the way the README says,
the version is written once, and the licence and changelog are there.

The Python choice is tested through ``--print-python`` (which changes
nothing) and through env.sh's functions, on copies of the scripts in a
temporary "repository", so no test builds rnnrs or touches this checkout's
``.venv/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import rnnrs

ROOT = Path(__file__).resolve().parents[1]
BASH = shutil.which("bash") or "/bin/bash"


def base_python() -> str:
    """An interpreter that is not in a virtual environment."""
    return str(getattr(sys, "_base_executable", None) or os.path.realpath(sys.executable))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A stand-in repository: the scripts, and nothing built."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", root / "scripts")
    return root


def python3_on_path(tmp_path: Path, target: str) -> str:
    """A PATH whose python3 is ``target`` (and then the usual system dirs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").unlink(missing_ok=True)
    (bin_dir / "python3").symlink_to(target)
    return f"{bin_dir}:/usr/bin:/bin"


def clean_env(path: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "RNNRS_PYTHON")}
    env.update(PATH=path, **extra)
    return env


def print_python(repo: Path, env: dict[str, str], script: str = "demo.sh") -> list[str]:
    result = subprocess.run(
        [BASH, str(repo / "scripts" / script), "--print-python"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("script", ["demo.sh", "test.sh"])
def test_without_a_virtual_environment_the_scripts_choose_the_repository_venv(repo, tmp_path, script):
    """A plain python3 (Debian's system Python refuses pip installs): both
    scripts choose .venv/ at the repository root, to be created; asking
    changes nothing."""
    env = clean_env(python3_on_path(tmp_path, base_python()))
    path, why = print_python(repo, env, script)
    assert path == str(repo / ".venv" / "bin" / "python")
    assert "to be created" in why and "no virtual environment is active" in why
    assert not (repo / ".venv").exists()


def test_an_active_virtual_environment_is_used(repo, tmp_path):
    active = tmp_path / "mine"
    venv.create(active, with_pip=False)
    env = clean_env(python3_on_path(tmp_path, base_python()), VIRTUAL_ENV=str(active))
    path, why = print_python(repo, env)
    assert path == str(active / "bin" / "python")
    assert "VIRTUAL_ENV" in why


def test_python3_inside_a_virtual_environment_is_used(repo, tmp_path):
    """No VIRTUAL_ENV, but python3 on PATH is a venv's (its bin/ put on PATH
    by hand, as some tools do)."""
    inner = tmp_path / "inner"
    venv.create(inner, with_pip=False, symlinks=True)
    assert (inner / "bin" / "python3").exists()
    env = clean_env(f"{inner / 'bin'}:/usr/bin:/bin")
    path, why = print_python(repo, env)
    assert Path(path).parent == inner / "bin"
    assert "runs in a virtual environment" in why


def test_a_conda_environment_and_rnnrs_python_are_used(repo, tmp_path):
    conda = tmp_path / "conda"
    (conda / "bin").mkdir(parents=True)
    (conda / "bin" / "python").symlink_to(base_python())
    env = clean_env(python3_on_path(tmp_path, base_python()), CONDA_PREFIX=str(conda))
    assert print_python(repo, env)[0] == str(conda / "bin" / "python")
    env["RNNRS_PYTHON"] = "/opt/some/python"
    path, why = print_python(repo, env)
    assert (path, why) == ("/opt/some/python", "RNNRS_PYTHON is set")


def test_the_venv_is_created_once_and_said_so(repo, tmp_path):
    """rnnrs_prepare_python creates .venv/ with python3 -m venv, says so,
    and reuses it the next time."""
    env = clean_env(python3_on_path(tmp_path, base_python()))
    run = 'source scripts/env.sh && rnnrs_select_python && rnnrs_prepare_python && echo "USING $RNNRS_PYTHON"'
    first = subprocess.run([BASH, "-c", run], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "creating one for rnnrs in" in first.stdout and "python3 -m venv .venv" in first.stdout
    venv_python = repo / ".venv" / "bin" / "python"
    assert f"USING {venv_python}" in first.stdout
    probe = [str(venv_python), "-c", "import sys; print(sys.prefix != sys.base_prefix)"]
    assert subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip() == "True"
    second = subprocess.run([BASH, "-c", run], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "creating" not in second.stdout
    assert f"USING {venv_python}" in second.stdout


def test_cargo_is_found_in_the_rustup_directory(repo, tmp_path):
    """A fresh shell may lack ~/.cargo/bin on PATH; without cargo anywhere the
    message says to install Rust with rustup."""
    home = tmp_path / "home"
    empty = tmp_path / "empty"
    empty.mkdir()
    run = "source scripts/env.sh && rnnrs_find_cargo && command -v cargo"
    missing = subprocess.run(
        [BASH, "-c", run], cwd=repo, env=clean_env(str(empty), HOME=str(home)), capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert "rustup" in missing.stderr
    (home / ".cargo" / "bin").mkdir(parents=True)
    cargo = home / ".cargo" / "bin" / "cargo"
    cargo.write_text("#!/bin/sh\n")
    cargo.chmod(0o755)
    found = subprocess.run(
        [BASH, "-c", run], cwd=repo, env=clean_env(str(empty), HOME=str(home)), capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().splitlines()[-1] == str(cargo)


def cargo_version() -> str:
    text = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    match = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
    assert match, "Cargo.toml has no [package] version"
    return match.group(1)


def test_the_version_is_written_once():
    """Cargo.toml holds the version; pyproject.toml takes it from there
    (maturin) and rnnrs.__version__ reads the installed metadata."""
    assert rnnrs.__version__ == cargo_version()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^dynamic\s*=\s*\["version"\]', pyproject, re.M)
    assert not re.search(r"^version\s*=", pyproject, re.M)
    init = (ROOT / "python" / "rnnrs" / "__init__.py").read_text(encoding="utf-8")
    assert cargo_version() not in re.findall(r'"(\d+\.\d+\.\d+)"', init)


def test_license_is_mit_and_the_changelog_has_this_version():
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the rnnrs developers" in license_text
    assert "Permission is hereby granted, free of charge" in license_text
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'license = { text = "MIT" }' in pyproject
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert f"## [{cargo_version()}]" in changelog
