"""Packaging: requirements.txt agrees with the pyproject pins; the wheel runs `logo route` outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# setuptools understands a PEP 639 license expression (license = "MIT") from 77 on; an older one in the venv
# means building in an isolated environment, which fetches a new setuptools
PEP639_SETUPTOOLS = Version("77")
SUBPROCESS_TIMEOUT_S = 300


def _requirements(lines) -> dict[str, Requirement]:
    """Canonical package name -> requirement, for requirement lines (comments and blank lines skipped)."""
    parsed = {}
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            if name in parsed:
                raise ValueError(f"{requirement.name!r} is listed twice ({parsed[name]}, {requirement}): keep one")
            parsed[name] = requirement
    return parsed


def _pyproject_requirements() -> tuple[dict[str, Requirement], dict[str, Requirement]]:
    """(the engine's dependencies, every requirement of pyproject: dependencies and every extra)."""
    project = PYPROJECT["project"]
    engine = _requirements(project["dependencies"])
    everything = dict(engine)
    for extra, lines in project["optional-dependencies"].items():
        for name, requirement in _requirements(lines).items():
            if name in everything and everything[name].specifier != requirement.specifier:
                raise ValueError(f"[{extra}] pins {requirement}, but pyproject pins {everything[name]} elsewhere")
            everything[name] = requirement
    return engine, everything


def test_requirements_agree_with_the_pyproject_pins():
    spaces = _requirements((REPO / "requirements.txt").read_text(encoding="utf-8").splitlines())
    engine, everything = _pyproject_requirements()
    missing = sorted(str(r) for name, r in engine.items() if name not in spaces)
    assert missing == [], f"requirements.txt lacks the engine's dependencies {missing}: add them"
    disagree = [
        f"{spaces[name]} (requirements.txt) vs {everything[name]} (pyproject.toml)"
        for name in sorted(spaces.keys() & everything.keys())
        if spaces[name].specifier != everything[name].specifier
    ]
    assert disagree == []
    unknown = sorted(str(spaces[name]) for name in spaces.keys() - everything.keys())
    assert unknown == [], f"requirements.txt names {unknown}, which no pyproject dependency or extra lists"


def test_the_agreement_check_catches_a_changed_pin():
    """The check above compares specifiers, not names: a different pin for the same package is caught."""
    spaces = _requirements(["torch==2.12.0", "peft==0.21.0  # a comment"])
    engine, _ = _pyproject_requirements()
    assert spaces["torch"].specifier != engine["torch"].specifier
    assert spaces["peft"].specifier == engine["peft"].specifier
    with pytest.raises(ValueError, match=r"'Torch' is listed twice \(torch==2\.13\.0, Torch>=2\): keep one"):
        _requirements(["torch==2.13.0", "Torch>=2"])


# --- the installed wheel ----------------------------------------------------------------------------


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of what it is made of (pyproject, README, logo/): the build leaves nothing
    in the checkout, and stale files of an earlier build cannot slip into it."""
    source = tmp_path_factory.mktemp("wheel-source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "logo", source / "logo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    isolation = [] if Version(version("setuptools")) < PEP639_SETUPTOOLS else ["--no-build-isolation"]
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(out), str(source)], source)
    (built,) = out.glob("logo_studio-*.whl")
    return built


def test_wheel_holds_the_engine_library_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"logo"}
    assert "logo/data/reference_prompts.txt" in names
    assert "logo/__main__.py" in names and "logo/cli.py" in names
    packages = {str(Path(n).parent) for n in names if n.endswith("/__init__.py")}
    on_disk = {str(p.parent.relative_to(REPO)) for p in (REPO / "logo").rglob("__init__.py")}
    assert packages == on_disk, f"subpackages missing from the wheel: {sorted(on_disk - packages)}"
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "logo = logo.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed into a target directory; the venv already holds its dependencies."""
    target = tmp_path_factory.mktemp("target")
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], target)
    return target


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_world, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-model")
    tiny_world.model.save_pretrained(directory)
    tiny_world.tokenizer.save_pretrained(directory)
    return directory


def _outside_env(installed: Path, tmp: Path) -> dict[str, str]:
    """Only the installed wheel on the path: the checkout's logo/ (and its editable install) come later or
    not at all, so `import logo` finds the target's copy."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    return env | {"PYTHONPATH": str(installed), "LOGO_CACHE": str(tmp / "cache"), "PYTHONNOUSERSITE": "1"}


def _route_args(tiny_world, tiny_model_dir: Path) -> list[str]:
    return [
        "route",
        "Translate to French: the cat",
        "--adapters",
        str(tiny_world.pool_dir),
        "--base-model",
        str(tiny_model_dir),
        "--device",
        "cpu",
        "--json",
    ]


def _check_route_output(stdout: str, tiny_world) -> None:
    data = json.loads(stdout)
    assert data["selected"] and set(data["selected"]) <= set(data["signals"])
    assert len(data["weights"]) == len(data["selected"]) and sum(data["weights"]) == pytest.approx(1.0)
    assert set(data["signals"]) == {p.name for p in tiny_world.pool_dir.iterdir() if p.is_dir()}


def test_python_m_logo_route_runs_from_the_installed_wheel(installed, tiny_world, tiny_model_dir, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = _outside_env(installed, tmp_path)
    where = _run([sys.executable, "-c", "import logo; print(logo.__file__)"], outside, env).stdout.strip()
    assert Path(where).is_relative_to(installed), f"logo imported from {where}, not from the installed wheel"
    done = _run([sys.executable, "-m", "logo", *_route_args(tiny_world, tiny_model_dir)], outside, env)
    _check_route_output(done.stdout, tiny_world)


def test_logo_console_script_runs_from_the_installed_wheel(installed, tiny_world, tiny_model_dir, tmp_path):
    script = installed / "bin" / "logo"
    assert script.is_file(), f"the wheel installed no console script at {script}"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    done = _run([str(script), *_route_args(tiny_world, tiny_model_dir)], outside, _outside_env(installed, tmp_path))
    _check_route_output(done.stdout, tiny_world)
