"""The `rag-splade` command line: one protocol for every subcommand, --version, serve."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from rag_splade.pipelines import cli, serve
from rag_splade.pipelines.cli import COMMANDS, load_command, main

INDEX_ENV = ("RAG_SPLADE_INDEX_PATH", "RAG_SPLADE_QDRANT_URL", "RAG_SPLADE_COLLECTION")


@pytest.fixture
def clean_env() -> Iterator[None]:
    """No RAG_SPLADE_* variables; whatever `serve` sets is undone afterwards."""
    with mock.patch.dict(os.environ):
        for name in [n for n in os.environ if n.startswith("RAG_SPLADE_")]:
            del os.environ[name]
        yield


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace `uvicorn.run`; each call records its arguments and the RAG_SPLADE_* env."""
    uvicorn = pytest.importorskip("uvicorn")
    calls: list[dict[str, Any]] = []

    def fake_run(app: str, **kwargs: Any) -> None:
        env = {k: v for k, v in os.environ.items() if k.startswith("RAG_SPLADE_")}
        calls.append({"app": app, **kwargs, "env": env})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    return calls


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"rag-splade {importlib.metadata.version('rag-splade')}\n"


def test_version_without_distribution_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag_splade import __version__

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert cli.version() == __version__


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in ("ingest", "search", "eval", "bench", "serve", "demo", "tiny-models"):
        assert name in COMMANDS and f"    {name}" in out, name


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_is_a_module_with_add_arguments_and_run(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_command(name)
    assert callable(module.add_arguments) and callable(module.run)
    assert not hasattr(module, "main"), f"{name}: no per-command main next to run"
    with pytest.raises(SystemExit) as exit_:  # its flags mount under `rag-splade NAME`
        main([name, "--help"])
    assert exit_.value.code == 0
    assert f"usage: rag-splade {name}" in capsys.readouterr().out


@pytest.mark.parametrize("job", ["ingest", "evaluate", "benchmark"])
def test_no_per_job_entry_points(job: str) -> None:
    assert importlib.util.find_spec(f"rag_splade.pipelines.{job}.__main__") is None
    assert not hasattr(importlib.import_module(f"rag_splade.pipelines.{job}.cli"), "main")


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serf"])
    assert exit_.value.code == 2
    assert "invalid choice: 'serf'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown command 'serf'"):
        load_command("serf")


def test_tiny_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tiny-models", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"RAG_SPLADE_SPARSE_MODEL={tmp_path / 'm' / 'splade'}",
        f"RAG_SPLADE_DENSE_MODEL={tmp_path / 'm' / 'dense'}",
    ]
    assert (tmp_path / "m" / "splade" / "config.json").is_file()
    assert (tmp_path / "m" / "dense" / "modules.json").is_file()
    (tmp_path / "file").write_text("x")
    assert main(["tiny-models", str(tmp_path / "file")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err


# -- serve -----------------------------------------------------------------------------------
def test_serve_defaults(clean_env: None, uvicorn_calls: list[dict[str, Any]]) -> None:
    assert main(["serve"]) == 0
    [call] = uvicorn_calls
    assert call["app"] == "rag_splade.api.app:app"
    assert (call["host"], call["port"], call["workers"], call["log_level"]) == (
        "127.0.0.1",
        8000,
        1,
        "info",
    )
    assert call["env"] == {}  # no flag, no override: the app reads the environment as it is


def test_serve_passes_flags_and_index_settings(
    tmp_path: Path, clean_env: None, uvicorn_calls: list[dict[str, Any]]
) -> None:
    os.environ["RAG_SPLADE_API_KEY"] = "secret"  # settings the flags do not touch stay
    argv = ["serve", "--host", "0.0.0.0", "--port", "9123", "--log-level", "debug"]
    index = ["--index-path", str(tmp_path / "i"), "--collection", "faq", "--device", "cpu"]
    assert main([*argv, *index]) == 0
    [call] = uvicorn_calls
    assert (call["host"], call["port"], call["workers"], call["log_level"]) == (
        "0.0.0.0",
        9123,
        1,
        "debug",
    )
    assert call["env"] == {
        "RAG_SPLADE_API_KEY": "secret",
        "RAG_SPLADE_INDEX_PATH": str(tmp_path / "i"),
        "RAG_SPLADE_COLLECTION": "faq",
        "RAG_SPLADE_DEVICE": "cpu",
    }


def test_serve_encoders_only_needs_no_index_and_takes_workers(
    clean_env: None, uvicorn_calls: list[dict[str, Any]]
) -> None:
    assert main(["serve", "--encoders-only", "--workers", "2"]) == 0
    [call] = uvicorn_calls
    assert call["workers"] == 2
    assert call["env"] == {"RAG_SPLADE_ENCODERS_ONLY": "true"}


def test_serve_several_workers_need_a_qdrant_server(
    clean_env: None, uvicorn_calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "--workers 2 needs a Qdrant server" in err and "--workers 1" in err
    assert uvicorn_calls == []
    assert main(["serve", "--workers", "3", "--qdrant-url", "http://qdrant:6333"]) == 0
    [call] = uvicorn_calls
    assert call["workers"] == 3
    assert call["env"] == {"RAG_SPLADE_QDRANT_URL": "http://qdrant:6333"}


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--port", "0", "an integer from 1 to 65535"),
        ("--port", "65536", "an integer from 1 to 65535"),
        ("--port", "http", "an integer from 1 to 65535"),
        ("--workers", "0", "an integer >= 1"),
        ("--log-level", "loud", "invalid choice: 'loud'"),
    ],
)
def test_serve_rejects_bad_values(
    flag: str,
    value: str,
    allowed: str,
    uvicorn_calls: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert allowed in err and flag in err and value in err
    assert uvicorn_calls == []


def test_serve_rejects_bad_settings(
    clean_env: None, uvicorn_calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    os.environ["RAG_SPLADE_BATCH_SIZE"] = "0"
    assert main(["serve"]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert uvicorn_calls == []


def test_serve_hands_the_connection_settings_to_uvicorn(
    clean_env: None, uvicorn_calls: list[dict[str, Any]]
) -> None:
    os.environ["RAG_SPLADE_TIMEOUT_KEEP_ALIVE_SECONDS"] = "9"
    os.environ["RAG_SPLADE_LIMIT_CONCURRENCY"] = "40"
    assert main(["serve"]) == 0
    [call] = uvicorn_calls
    assert call["http"] == "rag_splade.api.protocol:ServiceH11Protocol"
    assert (call["timeout_keep_alive"], call["limit_concurrency"]) == (9, 40)
    assert (
        call["timeout_graceful_shutdown"] == 30 and call["h11_max_incomplete_event_size"] == 16384
    )


@pytest.mark.parametrize("key", ["鍵のひみつ", "clé", "two words"])
def test_serve_refuses_a_key_a_header_cannot_carry(
    key: str,
    clean_env: None,
    uvicorn_calls: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    os.environ["RAG_SPLADE_API_KEY"] = key
    assert main(["serve"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("rag-splade serve: api_key (RAG_SPLADE_API_KEY): ")
    assert "must be visible ASCII" in line and key not in line  # the secret is not repeated
    assert uvicorn_calls == []


def test_serve_without_the_api_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` now fails
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "uvicorn is not installed" in err and "pip install 'rag-splade[api]'" in err


def test_serve_environment_names_match_the_settings(tmp_path: Path) -> None:
    from rag_splade import Settings

    args = cli.build_parser(["serve"]).parse_args(
        ["serve", "--index-path", str(tmp_path), "--qdrant-url", "http://q:6333"]
    )
    env = serve.environment(args)
    with mock.patch.dict(os.environ, env):
        settings = Settings()
    assert settings.index_path == tmp_path and settings.qdrant_url == "http://q:6333"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str) -> int:
    """The HTTP status of GET `url`; 0 while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def test_serve_starts_the_service(
    tmp_path: Path, lexical_splade_path: Path, lexical_dense_path: Path
) -> None:
    """A real start on 127.0.0.1: the index flag reaches the app, which loads and answers."""
    pytest.importorskip("uvicorn")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_SPLADE_")}
    env |= {
        "RAG_SPLADE_SPARSE_MODEL": str(lexical_splade_path),
        "RAG_SPLADE_DENSE_MODEL": str(lexical_dense_path),
        "RAG_SPLADE_DEVICE": "cpu",
    }
    index = tmp_path / "index"
    command = [sys.executable, "-m", "rag_splade.pipelines.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--index-path", str(index), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    status = 0
    try:
        deadline = time.monotonic() + 600  # generous: CI shares 2 cores
        while status != 200 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
            status = _status(f"http://127.0.0.1:{port}/readyz")
    finally:
        process.terminate()  # uvicorn shuts down gracefully on SIGTERM
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert status == 200, f"/readyz answered {status}; output:\n{output}"
    assert index.is_dir()  # the app opened the index the flag named, not the default
    # uvicorn re-raises SIGTERM once it has shut down (since 0.29), so -SIGTERM is a clean stop;
    # -SIGKILL would mean it hung and was killed above
    assert process.returncode in (0, -signal.SIGTERM), output
