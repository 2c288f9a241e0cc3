"""The installed distribution claims only `rag_splade*` import names."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# repository folder -> the import name it has once installed
MAPPED = {"rag_splade": "rag_splade", "api": "rag_splade.api", "pipelines": "rag_splade.pipelines"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = ROOT / "build"
    had_build = build.exists()
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        cwd=out,
        capture_output=True,
        text=True,
    )
    (out / "build.log").write_text(built.stdout + built.stderr)
    if not had_build and build.exists():  # setuptools' scratch folder, not ours to keep
        import shutil

        shutil.rmtree(build, ignore_errors=True)
    [wheel] = out.glob("rag_splade-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_wheel_has_only_rag_splade_packages(wheel_names: set[str]) -> None:
    top = {
        name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(".dist-info")
    }
    assert top == {"rag_splade"}, f"top-level names in the wheel: {sorted(top)}"


def test_wheel_has_every_module_under_its_installed_name(wheel_names: set[str]) -> None:
    for folder, package in MAPPED.items():
        for source in (ROOT / folder).rglob("*.py"):
            relative = source.relative_to(ROOT / folder)
            installed = "/".join([*package.split("."), *relative.parts])
            assert installed in wheel_names, f"{source.relative_to(ROOT)} is not in the wheel"
    assert "rag_splade/data/jsquad_sample.json" in wheel_names


def test_console_script_points_into_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        [name] = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(name).decode()
    assert "rag-splade = rag_splade.pipelines.cli:main" in entry_points


def test_wheel_ships_the_page_and_the_stylesheet(wheel_names: set[str]) -> None:
    """The /ui/ page's assets and the views' stylesheet are package data."""
    for folder, package in (("api/static", "rag_splade/api/static"), ("rag_splade/static", "")):
        files = sorted((ROOT / folder).iterdir())
        assert files, folder
        for path in files:
            assert f"{package or folder}/{path.name}" in wheel_names, f"{folder}/{path.name}"


def test_wheel_ships_py_typed(wheel_names: set[str]) -> None:
    """Type checkers read the package's own hints (PEP 561)."""
    assert "rag_splade/py.typed" in wheel_names


def test_the_build_warns_about_no_folder(wheel: Path) -> None:
    """Every importable folder (data and asset folders too) is in `packages`: setuptools
    prints a 20-line warning at install for each one that is not."""
    log = (wheel.parent / "build.log").read_text()
    assert "Installing" in log or "Building wheel" in log  # the log is the build's
    assert "absent from the `packages` configuration" not in log
