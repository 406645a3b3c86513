"""lmmbook installed as a new user installs it: into a clean virtual environment, from
pyproject.toml alone.

The repository's files (without .git, the project's .venv and build output) are copied to a
temporary folder, so that the build (which setuptools does in the source tree: build/,
*.egg-info) leaves nothing in the repository. A virtual environment without system site packages
is created beside it, ``pip install <copy>`` runs there (not editable, no requirements file: every
dependency must come from pyproject.toml), and that environment's python, started in a folder
outside the source tree, imports lmmbook, computes inbreeding coefficients and a genomic
relationship matrix with known values, and loads the shipped mice data (package data).

pip may use its cache and the package registry. The test is skipped only when the registry cannot
be reached; any other failure (a dependency missing from pyproject.toml, a build error, a wrong
value) fails it. It takes about half a minute with a warm pip cache.
"""

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Not part of an installed package, and either large or made by a build.
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "_build", "build", "dist", "*.egg-info",
                                    "__pycache__", ".hypothesis", ".pytest_cache", ".ruff_cache",
                                    ".ipynb_checkpoints")

# Run by the new environment's python. Every module that lmmbook imports anywhere (also inside
# functions that the two computations below do not reach) must be importable there.
CHECK = r"""
import ast, importlib.metadata, importlib.util, json, pathlib, sys
import numpy as np
import lmmbook

package = pathlib.Path(lmmbook.__file__).parent
imported = set()
for source in package.rglob("*.py"):
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
missing = sorted(m for m in imported if importlib.util.find_spec(m) is None)

# 1, 2 founders; 3 x 4 full sibs; 5 and 6 their offspring (full sibs again); 7 = 5 x 6
ped = lmmbook.Pedigree([1, 2, 3, 4, 5, 6, 7], [0, 0, 1, 1, 3, 3, 5], [0, 0, 2, 2, 4, 4, 6])
F = dict(zip(ped.ids.tolist(), ped.inbreeding().tolist()))
G = lmmbook.genomic_relationship(np.array([[0, 1, 2], [1, 1, 0], [2, 1, 1]]))
versions = {d: importlib.metadata.version(d) for d in ("numpy", "scipy", "pandas", "numba")}
import lmmbook.datasets
mice = lmmbook.datasets.mice()  # the package data were installed with the package
mice = {"shape": list(mice.genotypes.M.shape), "records": len(mice.phenotypes),
        "folder": str(lmmbook.datasets.DATA), "source": mice.genotypes.source}
print(json.dumps({"file": lmmbook.__file__, "prefix": sys.prefix, "base": sys.base_prefix,
                  "missing": missing, "F": F, "G": G.tolist(), "versions": versions,
                  "mice": mice}))
"""


def _index_url() -> str:
    """The index pip uses: PIP_INDEX_URL, else pip's configuration, else PyPI."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        got = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                             capture_output=True, text=True)
        url = got.stdout.strip() if got.returncode == 0 else ""
    return (url or "https://pypi.org/simple/").split()[0].rstrip("/") + "/"


def _unreachable(url: str) -> str | None:
    """Why the registry cannot be reached, or None when it answers (any HTTP status does)."""
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    try:
        with urllib.request.urlopen(url + "pip/", timeout=20, context=context):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as exc:
        return f"{exc}"


def _build_output(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name in ("build", "dist")
            or p.name.endswith(".egg-info")}


def _run(command: list[str], cwd: Path, env: dict, what: str, timeout: float):
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{what} took more than {timeout:.0f} s:\n{exc.stdout}\n{exc.stderr}")
    if done.returncode != 0:
        pytest.fail(f"{what} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n"
                    f"{done.stderr[-5000:]}")
    print(f"{what}: {time.perf_counter() - start:.1f} s")  # shown with -rA or on failure
    return done


def test_pip_install_into_a_clean_environment(tmp_path):
    url = _index_url()
    why = _unreachable(url)
    if why is not None:
        pytest.skip(f"the package registry {url} cannot be reached ({why}): pip could not "
                    "fetch lmmbook's dependencies")
    source, venv, elsewhere = tmp_path / "lmmbook-src", tmp_path / "venv", tmp_path / "elsewhere"
    before = _build_output(ROOT)
    shutil.copytree(ROOT, source, ignore=NOT_COPIED)
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PYTHONNOUSERSITE="1")

    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env, "python -m venv", 120)
    config = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in config
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--no-compile", str(source)], tmp_path, env,
         "pip install (from pyproject.toml alone)", 300)
    assert _build_output(ROOT) <= before, "the build wrote into the repository"

    done = _run([str(python), "-c", CHECK], elsewhere, env, "lmmbook in the new environment", 120)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    print("installed:", got["versions"])  # shown with -rA or when the test fails
    # the installed copy was imported, not the source tree
    installed = Path(got["file"]).resolve()
    assert installed.is_relative_to(venv.resolve()), installed
    assert not installed.is_relative_to(ROOT) and not installed.is_relative_to(source)
    assert Path(got["prefix"]).resolve() == venv.resolve() != Path(got["base"]).resolve()
    assert got["missing"] == [], f"imported by lmmbook but not installed: {got['missing']}"
    # the shipped mice data load from the installed package's folder, not from the source tree
    assert got["mice"]["shape"] == [1814, 10346] and got["mice"]["records"] == 1814
    for where in (got["mice"]["folder"], got["mice"]["source"]):
        assert Path(where).resolve().is_relative_to(installed.parent), where
    # full-sib matings: F = 1/4 after one, then F_t = (1 + 2 F_{t-1} + F_{t-2}) / 4 = 3/8
    expected_F = {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0, 5: 0.25, 6: 0.25, 7: 0.375}
    assert {int(k): v for k, v in got["F"].items()} == pytest.approx(expected_F, abs=1e-12)
    # p = (1/2, 1/2, 1/2), W = [[-1, 0, 1], [0, 0, -1], [1, 0, 0]], 2 sum p(1-p) = 1.5
    expected_G = [[2 / 1.5, -1 / 1.5, -1 / 1.5], [-1 / 1.5, 1 / 1.5, 0.0],
                  [-1 / 1.5, 0.0, 1 / 1.5]]
    for row, expected_row in zip(got["G"], expected_G, strict=True):
        assert row == pytest.approx(expected_row, abs=1e-12)
