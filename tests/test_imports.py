"""The import direction logo <- zoo <- analysis <- app (bench -> logo, zoo): the contracts hold, and can break."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("logo", "zoo", "analysis", "app", "bench")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
TIMEOUT_S = 300

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.is_file(), reason=f"no {LINT_IMPORTS}: pip install -e '.[dev]'")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports with root's pyproject.toml, on the packages under root (they come first on the path)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_the_checkout_keeps_every_import_contract():
    done = _lint_imports(REPO)
    assert done.returncode == 0, f"lint-imports found a backward import or a cycle:\n{done.stdout}\n{done.stderr}"
    assert "0 broken" in done.stdout and "broken" not in done.stdout.replace("0 broken", "")


@pytest.fixture
def copy_of_the_packages(tmp_path) -> Path:
    """The five packages and the contracts, copied: the tests below break the copy, never the checkout."""
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path


# (module that gains the import, the import, the contract that must break)
BACKWARD_IMPORTS = [
    ("zoo/metrics.py", "import app", "one-way layers: app -> analysis -> zoo -> logo"),
    ("logo/config.py", "import analysis", "one-way layers: app -> analysis -> zoo -> logo"),
    ("bench/scaleout.py", "import analysis", "bench uses the engine and the zoo only"),
    ("zoo/data.py", "import gradio", "nothing but the UI imports gradio"),
    ("logo/results.py", "import plotly", "the engine draws nothing"),
]


@pytest.mark.parametrize(("module", "statement", "contract"), BACKWARD_IMPORTS)
def test_a_backward_import_breaks_its_contract(copy_of_the_packages, module, statement, contract):
    root = copy_of_the_packages
    assert _lint_imports(root).returncode == 0, "the copy must keep the contracts before it is broken"
    path = root / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{statement}  # noqa: E402, F401\n", encoding="utf-8")
    done = _lint_imports(root)
    assert done.returncode != 0
    assert f"{contract} BROKEN" in done.stdout, done.stdout
    imported = statement.split()[-1]
    assert f"{module.removesuffix('.py').replace('/', '.')} -> {imported}" in done.stdout, done.stdout
