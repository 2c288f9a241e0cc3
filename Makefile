# Set-up and everyday commands. Every target builds ./.venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The tests run on the CPU build of torch (on this project's CI machines it is a local
# wheel). Users keep whatever torch build fits their hardware: TORCH_SPEC="torch" or
# install torch yourself first; the package itself does not pin torch.
TORCH_SPEC ?= torch==2.13.0
TINY_MODELS ?= ./models/tiny

.PHONY: install install-lean test check demo demo-offline lint typecheck docs docs-serve clean bench-gpu

install: $(BIN)/rag-splade

$(BIN)/rag-splade: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,docs,api,llama-index,pdf,formats,eval,bench,notebooks,onnx,train]"
	touch $@

# torch, the package and the service only (the full install is about 250 packages, 3 GB).
# The script's date is set to 1970 so that `make install` / `make test` still add the rest.
install-lean:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[api]"
	touch -d @0 $(BIN)/rag-splade

# The test command (CI runs exactly this): lint, format, types, docs, then the tests.
test: check
	$(BIN)/python -m pytest -q

check: lint typecheck docs

typecheck: install
	$(BIN)/mypy

# --strict: a broken link or reference fails the build; the site goes to a scratch folder.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir "$$(mktemp -d)"

# The site at http://127.0.0.1:8000, rebuilt on save; the variable hides MkDocs Material's
# banner about MkDocs 2.
docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The main job: index the bundled JSQuAD sample in the embedded Qdrant Edge index and
# search it, with the models of RAG_SPLADE_SPARSE_MODEL / RAG_SPLADE_DENSE_MODEL
# (default: the real models, downloaded from the Hugging Face hub).
demo: install
	$(BIN)/rag-splade demo

# The same demo without hub access: tiny models built offline into $(TINY_MODELS).
demo-offline: install
	$(BIN)/rag-splade tiny-models $(TINY_MODELS)
	RAG_SPLADE_SPARSE_MODEL=$(TINY_MODELS)/splade RAG_SPLADE_DENSE_MODEL=$(TINY_MODELS)/dense \
	RAG_SPLADE_INDEX_PATH=./data/demo-offline $(BIN)/rag-splade demo

# The GPU figures in one prepared run of at most 8 minutes on one card (needs a CUDA build
# of torch, e.g. TORCH_SPEC="torch"): gpu-marked tests, encoding, serving, rerank, training,
# remote. Writes bench-gpu/gpu-check.md and .json (docs/benchmarks.md says more); on a CPU,
# `python -m rag_splade.pipelines.benchmark.gpu_check --dry-run` checks every step.
bench-gpu: install
	$(BIN)/python -m rag_splade.pipelines.benchmark.gpu_check --out bench-gpu

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) ./data/demo-offline $(TINY_MODELS)
