"""Packaging: pyproject lists every package and data file, a built wheel installs and works outside
the repository, and the client side stays free of the server's heavy dependencies."""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS["package-dir"]
PACKAGES: list[str] = SETUPTOOLS["packages"]
PACKAGE_DATA: dict[str, list[str]] = SETUPTOOLS.get("package-data", {})
SCHEMA_DIR = ROOT / "server" / "archive" / "schema"
HEAVY = ("duckdb", "pyarrow", "starlette")


def _clean_env() -> dict[str, str]:
    """The environment for child interpreters: nothing that points them back at the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _source_files(root_pkg: str) -> list[Path]:
    src = ROOT / PACKAGE_DIR[root_pkg]
    return [p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def _dotted(path: Path) -> str:
    """The installed dotted name of a source directory under one of the package-dir roots."""
    for pkg, src in PACKAGE_DIR.items():
        try:
            rel = path.relative_to(ROOT / src)
        except ValueError:
            continue
        return ".".join([pkg, *rel.parts])
    raise AssertionError(f"{path} is under no package-dir root")


def _source_dir(pkg: str) -> Path:
    """The source directory of a dotted package name, through package-dir."""
    root = max((k for k in PACKAGE_DIR if pkg == k or pkg.startswith(k + ".")), key=len)
    return ROOT / PACKAGE_DIR[root] / Path(*pkg[len(root):].split(".")[1:])


def _wheel_name(path: Path) -> str:
    """Where a source file lands in the wheel, e.g. server/cli.py -> diavo/server/cli.py."""
    return _dotted(path.parent).replace(".", "/") + "/" + path.name


# --------------------------------------------------------------------------------------------
# pyproject.toml against the tree


def test_package_dir_roots_are_the_three_sides():
    assert PACKAGE_DIR == {"diavo.server": "server", "diavo.client": "client", "diavo.shared": "shared"}


def test_every_package_directory_is_listed():
    found = {
        _dotted(init.parent)
        for root_pkg in PACKAGE_DIR
        for init in (ROOT / PACKAGE_DIR[root_pkg]).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found, "no packages found"
    missing = sorted(found - set(PACKAGES))
    assert not missing, f"packages with an __init__.py missing from [tool.setuptools] packages: {missing}"
    stale = sorted(set(PACKAGES) - found)
    assert not stale, f"[tool.setuptools] packages lists directories without __init__.py: {stale}"


def test_every_python_module_is_in_a_listed_package():
    # A .py file in a directory without __init__.py would silently be left out of the wheel.
    orphans = sorted(
        str(p.relative_to(ROOT))
        for root_pkg in PACKAGE_DIR
        for p in _source_files(root_pkg)
        if p.suffix == ".py" and _dotted(p.parent) not in PACKAGES
    )
    assert not orphans, f"modules outside any listed package: {orphans}"


def test_every_schema_yaml_is_package_data():
    yamls = sorted(SCHEMA_DIR.glob("*.yaml")) + sorted(SCHEMA_DIR.glob("*.yml"))
    assert {p.name for p in yamls} >= {"ivoa.yaml", "dp1.yaml", "tap_schema.yaml"}
    covered: set[Path] = set()
    # setuptools globs each package's patterns (and those under "" / "*") in that package's directory.
    for pkg in PACKAGES:
        pkg_dir = _source_dir(pkg)
        for pattern in PACKAGE_DATA.get(pkg, []) + PACKAGE_DATA.get("", []) + PACKAGE_DATA.get("*", []):
            covered.update(Path(p).resolve() for p in glob.glob(str(pkg_dir / pattern), recursive=True))
    uncovered = [str(p.relative_to(ROOT)) for p in yamls if p.resolve() not in covered]
    assert not uncovered, f"schema YAML not covered by [tool.setuptools.package-data]: {uncovered}"


# --------------------------------------------------------------------------------------------
# a real wheel, installed in a fresh virtual environment


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a snapshot of the sources (the repository itself is left untouched)."""
    src = tmp_path_factory.mktemp("wheel-src")
    for p in ROOT.iterdir():
        if p.is_file():
            shutil.copy2(p, src / p.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in PACKAGE_DIR.values():
        shutil.copytree(ROOT / d, src / d, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel-dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)],
        capture_output=True, text=True, timeout=600, env=_clean_env(), cwd=src,
    )
    assert proc.returncode == 0, f"wheel build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    wheels = list(out.glob("diavo-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv_python(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed and the test run's dependencies visible."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    pip_version = tuple(int(x) for x in re.findall(r"\d+", _pip_version())[:2])
    with_pip = pip_version < (22, 3)  # pip --python arrived in 22.3; older ones need pip in the venv
    cmd = [sys.executable, "-m", "venv", "--system-site-packages", str(venv)]
    if not with_pip:
        cmd.insert(-1, "--without-pip")
    subprocess.run(cmd, check=True, timeout=300, env=_clean_env())
    python = venv / "bin" / "python"
    if not python.exists():  # Windows layout
        python = venv / "Scripts" / "python.exe"
    # --system-site-packages exposes the *base* interpreter's packages; when the tests run inside a
    # venv the dependencies live there, so point the new venv at the test run's site-packages too.
    # Paths listed in a .pth file are appended without processing their own .pth files, so the
    # repository's editable-install hook stays out.
    site_dir = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, env=_clean_env(),
    ).stdout.strip())
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site_dir / "_diavo_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    pip = [str(python), "-m", "pip"] if with_pip else [sys.executable, "-m", "pip", "--python", str(python)]
    proc = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
                          capture_output=True, text=True, timeout=300, env=_clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return python


def _pip_version() -> str:
    import pip

    return pip.__version__


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in ("diavo/server/cli.py", "diavo/shared/psf.py", "diavo/server/archive/schema/dp1.yaml"):
        assert must in names, f"{must} missing from {wheel.name}"
    tops = {n.split("/", 1)[0] for n in names}
    assert not tops & {"server", "client", "shared"}, f"top-level source folders in the wheel: {sorted(tops)}"
    assert tops == {"diavo", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, tops
    # Every module and every schema file of the tree is in the wheel.
    wanted = {
        _wheel_name(p)
        for root_pkg in PACKAGE_DIR
        for p in _source_files(root_pkg)
        if p.suffix == ".py" or (p.parent == SCHEMA_DIR and p.suffix in (".yaml", ".yml"))
    }
    assert not wanted - names, f"missing from the wheel: {sorted(wanted - names)}"
    # No stray bytecode or test files.
    assert not [n for n in names if n.endswith(".pyc") or "/tests/" in n]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "diavo = diavo.server.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_finds_its_schema(venv_python, tmp_path):
    from diavo.server.archive.model import load_model

    expected = [f"{t.schema}.{t.name}" for t in load_model().tables()]
    code = (
        "import diavo.server, diavo.client, diavo.shared; "
        "from diavo.server.archive.model import load_model, SCHEMA_DIR; "
        "print(len(list(load_model().tables()))); "
        "import json; print(json.dumps({'tables': [f'{t.schema}.{t.name}' for t in load_model().tables()], "
        "'files': [m.__file__ for m in (diavo.server, diavo.client, diavo.shared)], 'schema_dir': str(SCHEMA_DIR)}))"
    )
    proc = subprocess.run([str(venv_python), "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    count, info = proc.stdout.strip().splitlines()
    info = json.loads(info)
    assert int(count) == len(expected), (count, expected)
    assert info["tables"] == expected
    assert {"ivoa.ObsCore", "dp1.DiaSource", "dp1.DiaObject", "dp1.Visit", "TAP_SCHEMA.columns"} <= set(expected)
    venv_root = venv_python.parent.parent.resolve()
    for f in [*info["files"], info["schema_dir"]]:
        assert Path(f).resolve().is_relative_to(venv_root), f"{f} was not imported from the installed wheel"
        assert not Path(f).resolve().is_relative_to(ROOT), f


def test_installed_console_script(venv_python, tmp_path):
    script = venv_python.parent / ("diavo.exe" if os.name == "nt" else "diavo")
    assert script.exists()
    proc = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    for sub in ("demo", "ingest", "export"):
        assert sub in proc.stdout


# --------------------------------------------------------------------------------------------
# the client stays thin


def test_base_dependencies_are_thin():
    names = {re.match(r"[A-Za-z0-9._-]+", d).group(0).lower().replace("_", "-")
             for d in PYPROJECT["project"]["dependencies"]}
    assert names, "no dependencies parsed"
    assert not names & set(HEAVY), f"server-only packages in [project] dependencies: {sorted(names & set(HEAVY))}"
    server = {re.match(r"[A-Za-z0-9._-]+", d).group(0).lower()
              for d in PYPROJECT["project"]["optional-dependencies"]["server"]}
    assert {"duckdb", "pyarrow"} <= server


def test_client_and_shared_import_without_server_dependencies(tmp_path):
    code = (
        "import sys, json; "
        "import diavo.client, diavo.shared.psf, diavo.shared.masks, diavo.shared.ids; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(HEAVY)!r})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
