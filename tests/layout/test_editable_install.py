"""A new user's first steps: ``pip install -e . -e hermes_backend_docker`` into a fresh venv,
then Python, pytest and the ``hermes`` script, run from the repository root (where a source
folder could shadow an installed package) and from elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.install


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    if os.environ.get("HERMES_SKIP_INSTALL_TESTS") == "1":
        pytest.skip("HERMES_SKIP_INSTALL_TESTS=1")
    where = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    py = where / "bin" / "python"
    out = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", ".", "-e", "hermes_backend_docker"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return where


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERMES_DISABLE", "PYTHON"))}
    return env


@pytest.mark.parametrize("cwd", ["root", "elsewhere"])
def test_runtime_lists_docker_and_local(venv, cwd, tmp_path):
    where = ROOT if cwd == "root" else tmp_path
    code = "from hermes_core import Runtime; print(sorted(Runtime().backends))"
    out = subprocess.run([str(venv / "bin/python"), "-c", code], cwd=where, capture_output=True, text=True,
                         timeout=120, env=_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['docker', 'local']"


def test_hermes_script_from_the_root(venv):
    out = subprocess.run([str(venv / "bin/hermes"), "plugins", "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env=_env())
    assert out.returncode == 0, out.stderr
    names = {p["name"] for p in json.loads(out.stdout)}
    assert {"local", "docker"} <= names


def test_python_m_pytest_from_the_root_imports_the_installed_package(venv, tmp_path):
    test = tmp_path / "test_where.py"
    test.write_text(
        "import hermes_backend_docker, hermes_core\n"
        "def test_where():\n"
        "    assert hermes_backend_docker.__file__.endswith('src/hermes_backend_docker/__init__.py'), hermes_backend_docker.__file__\n"
        "    assert hermes_core.Runtime().backends.get('docker').factory\n"
    )
    out = subprocess.run([str(venv / "bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=_env())
    if "No module named pytest" in out.stderr:
        subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "pytest"], check=True, timeout=300)
        out = subprocess.run([str(venv / "bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                             cwd=ROOT, capture_output=True, text=True, timeout=300, env=_env())
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "1 passed" in out.stdout
