"""docker-compose.yml and the Dockerfile, checked at the YAML level (no Docker engine here):
the services, the settings they pass are ones the app reads, healthchecks, the GPU."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag_splade.api.config import ServiceSettings

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).resolve().parents[1]
NODES = ["qdrant-node-1", "qdrant-node-2", "qdrant-node-3"]
DEFAULT = re.compile(r"^\$\{(\w+)(?::-(.*?)|:\?.*)?\}$")


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def resolved(environment: dict, given: dict[str, str]) -> dict[str, str]:
    """The environment as Compose would pass it, `${VAR:-default}` filled in."""
    out = {}
    for key, value in environment.items():
        match = DEFAULT.match(str(value))
        if match:
            value = given.get(match.group(1), match.group(2) or "")
        out[key] = str(value)
    return out


def test_qdrant_is_pinned_and_checked(services) -> None:
    images = {services[n]["image"] for n in ["qdrant", *NODES]}
    assert len(images) == 1
    (image,) = images
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", image), image
    for name in ["qdrant", *NODES]:
        service = services[name]
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY")
        assert any(v.endswith(":/qdrant/storage") for v in service["volumes"])


@pytest.mark.parametrize("name", ["api", "api-cluster"])
def test_api_service(services, name) -> None:
    api = services[name]
    assert api["build"] == "."
    devices = api["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert all(c["condition"] == "service_healthy" for c in api["depends_on"].values())
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    env = api["environment"]
    cache = env["HF_HOME"]
    assert any(v.endswith(f":{cache}") for v in api["volumes"]), "model cache volume"
    assert env["RAG_SPLADE_QDRANT_API_KEY"].startswith("${QDRANT_API_KEY")
    host = re.match(r"http://([\w-]+):6333$", env["RAG_SPLADE_QDRANT_URL"]).group(1)
    assert host in api["depends_on"] and host in services


@pytest.mark.parametrize("name", ["api", "api-cluster"])
def test_api_environment_is_read_by_the_app(services, name, monkeypatch) -> None:
    env = resolved(services[name]["environment"], {"QDRANT_API_KEY": "k"})
    names = {k for k in env if k.startswith("RAG_SPLADE_")}
    fields = {f"RAG_SPLADE_{f.upper()}" for f in ServiceSettings.model_fields}
    assert names <= fields, f"not read by the app: {names - fields}"
    for key in list(fields):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = ServiceSettings()
    assert settings.qdrant_url == env["RAG_SPLADE_QDRANT_URL"]
    assert settings.qdrant_api_key.get_secret_value() == "k"
    assert settings.device == "cuda" and settings.api_key is None
    assert settings.cors_origin_list == []  # CORS stays off unless asked for
    if name == "api-cluster":
        assert settings.shard_number >= 3 and 2 <= settings.replication_factor <= 3


def test_cluster_profile(services) -> None:
    for name in [*NODES, "api-cluster"]:
        assert services[name]["profiles"] == ["cluster"]
    for name in NODES:
        assert services[name]["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert services[name]["command"][-2:] == ["--uri", f"http://{name}:6335"]
    for name in NODES[1:]:
        assert services[name]["command"][1:3] == ["--bootstrap", "http://qdrant-node-1:6335"]
    assert set(services["api-cluster"]["depends_on"]) == set(NODES)
    host_ports = [p for s in services.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), "two services bind one host port"


def test_dockerfile_serves_the_app(services) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"rag_splade.api.app:app"' in dockerfile and 'pip install ".[api]"' in dockerfile
    assert "EXPOSE 8000" in dockerfile
    assert "ENV" in dockerfile and "HF_HOME=/models" in dockerfile
    copied = {
        w for line in dockerfile.splitlines() if line.startswith("COPY") for w in line.split()
    }
    for path in ("rag_splade", "pipelines", "api", "pyproject.toml", "README.md"):
        assert (ROOT / path).exists() and path in copied
    assert services["api"]["ports"] == ["8000:8000"]


@pytest.mark.parametrize("name", ["api", "api-cluster"])
def test_compose_refuses_to_start_the_api_without_a_key(services, name) -> None:
    # `${VAR:?message}`: compose stops with the message when the variable is unset or empty
    key = services[name]["environment"]["RAG_SPLADE_API_KEY"]
    assert re.fullmatch(r"\$\{RAG_SPLADE_API_KEY:\?.+\}", key), key


def test_split_profile_puts_the_models_on_one_gpu_server(services, monkeypatch) -> None:
    encoder, api = services["encoder"], services["api-split"]
    assert encoder["profiles"] == api["profiles"] == ["split"]
    assert encoder["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert "resources" not in api["deploy"] and api["deploy"]["replicas"] >= 2
    assert api["depends_on"]["encoder"]["condition"] == "service_healthy"
    assert "whl/cpu" in api["build"]["args"]["TORCH_INDEX_URL"]
    fields = {f"RAG_SPLADE_{f.upper()}" for f in ServiceSettings.model_fields}
    given = {"QDRANT_API_KEY": "q", "RAG_SPLADE_ENCODER_KEY": "e", "RAG_SPLADE_API_KEY": "a"}
    for service, check in ((encoder, "encoder"), (api, "api")):
        env = resolved(service["environment"], given)
        assert {k for k in env if k.startswith("RAG_SPLADE_")} <= fields
        for key in fields:
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = ServiceSettings()
        if check == "encoder":
            assert settings.encoders_only and settings.device == "cuda"
        else:
            assert settings.device == "cpu" and not settings.encoders_only
            assert settings.sparse_url == settings.dense_url == "http://encoder:8000"
            assert settings.encoder_api_key.get_secret_value() == "e"
    keys = (
        encoder["environment"]["RAG_SPLADE_API_KEY"],
        api["environment"]["RAG_SPLADE_ENCODER_API_KEY"],
    )
    assert all(k.startswith("${RAG_SPLADE_ENCODER_KEY:?") for k in keys)
