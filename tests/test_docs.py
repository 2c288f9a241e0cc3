"""The README stays short and its links alive; the docs site builds strictly and its
configuration reference lists every setting."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HOOK = ROOT / "docs" / "hooks" / "settings_reference.py"
MAX_README_LINES = 300
# [text](target) outside code; a target with a scheme or a pure #anchor is not a file.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _mkdocs() -> str | None:
    local = Path(sys.executable).parent / "mkdocs"
    return str(local) if local.exists() else shutil.which("mkdocs")


def _without_code(markdown: str) -> str:
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", markdown)


def _relative_links(markdown: str) -> list[str]:
    targets = LINK.findall(_without_code(markdown))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def _settings_fields() -> list[tuple[str, str]]:
    """(field, env var) of every Settings and ServiceSettings field."""
    from rag_splade.api.config import ServiceSettings
    from rag_splade.settings import Settings

    fields = []
    for cls in (Settings, ServiceSettings):
        prefix = cls.model_config.get("env_prefix", "")
        fields += [(name, f"{prefix}{name}".upper()) for name in cls.model_fields]
    return fields


def _load_hook():
    spec = importlib.util.spec_from_file_location("settings_reference", HOOK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (limit {MAX_README_LINES}): move detail into docs/"
    )


@pytest.mark.parametrize("path", ["README.md", "notebooks/README.md"])
def test_relative_links_point_to_files(path: str) -> None:
    source = ROOT / path
    links = _relative_links(source.read_text(encoding="utf-8"))
    assert links, f"{path} links to nothing"
    missing = [
        link for link in links if not (source.parent / link.split("#")[0]).resolve().exists()
    ]
    assert not missing, f"{path} links to files that do not exist: {missing}"


def test_readme_keeps_the_setup_commands() -> None:
    """The fresh-machine commands the README promises are Makefile targets, and CI runs
    the README's test command."""
    readme = README.read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "demo-offline", "test"):
        assert f"`make {target}`" in readme
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), target
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_notebooks_readme_lists_every_notebook() -> None:
    listing = (ROOT / "notebooks" / "README.md").read_text(encoding="utf-8")
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    assert [n for n in notebooks if n not in listing] == []


def test_settings_reference_renders_every_field() -> None:
    markdown = _load_hook().render()
    for field, env in _settings_fields():
        assert f"`{field}`" in markdown and f"`{env}`" in markdown, field


def test_settings_reference_does_not_import_torch() -> None:
    """Building the configuration page must not need the model libraries."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('hook', {str(HOOK)!r})\n"
        "hook = importlib.util.module_from_spec(spec); spec.loader.exec_module(hook)\n"
        "hook.render()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", "rendering the settings reference imported torch"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mkdocs = _mkdocs()
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    site_dir = tmp_path_factory.mktemp("site")
    out = subprocess.run(
        [mkdocs, "build", "--strict", "--quiet", "--site-dir", str(site_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, f"mkdocs build --strict failed:\n{out.stdout}\n{out.stderr}"
    return site_dir


def test_docs_build_strictly(site: Path) -> None:
    assert (site / "index.html").exists()
    assert not (site / "hooks").exists(), "the build hook was published as a page"


def test_configuration_page_lists_every_setting(site: Path) -> None:
    page = html.unescape((site / "configuration" / "index.html").read_text(encoding="utf-8"))
    missing = [env for _, env in _settings_fields() if env not in page]
    assert not missing, f"configuration page lacks {missing}"
    missing_fields = [f for f, _ in _settings_fields() if f"<code>{f}</code>" not in page]
    assert not missing_fields, f"configuration page lacks fields {missing_fields}"
