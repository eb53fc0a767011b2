"""Every third-party package the code imports is a declared, pinned dependency (pyproject.toml),
and every pin is in requirements.lock, so a fresh install has what the code needs."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", ".run", "node_modules", "askhandle.egg-info", ".git"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [
        spec for group in project["optional-dependencies"].values() for spec in group
    ]
    pins = {}
    for spec in specs:
        name, _, version = spec.partition("==")
        pins[normalize(name.split("[")[0])] = version
    return pins


def third_party_imports() -> dict[str, str]:
    files = [p for p in ROOT.rglob("*.py") if not SKIP & set(p.relative_to(ROOT).parts)]
    local = {p.relative_to(ROOT).parts[0].removesuffix(".py") for p in files} | {
        p.stem for p in files
    }
    found: dict[str, str] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_a_declared_dependency():
    pins = declared()
    owners = packages_distributions()
    undeclared = {
        module: (where, owners.get(module))
        for module, where in third_party_imports().items()
        if not any(normalize(dist) in pins for dist in owners.get(module, [module]))
    }
    assert undeclared == {}


def test_every_declared_pin_is_in_the_lock_file():
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            lock[normalize(name)] = version.split("+")[0]  # torch==2.13.0+cpu is 2.13.0
    assert {name: v for name, v in declared().items() if lock.get(name) != v} == {}
