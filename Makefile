# ccbridge: `make run` sets everything up and starts the proxy and the viewer; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
PROXY_HOST  ?= 127.0.0.1
PROXY_PORT  ?= 8082
VIEWER_PORT ?= 8083
UPSTREAM    ?= https://api.anthropic.com
TOOLS       ?= .tools
# the Claude Code CLI version the end-to-end tests were verified with; `make test CLAUDE_CODE_VERSION=latest`
# tries the newest
CLAUDE_CODE_VERSION ?= 2.1.329
PYTEST_ARGS ?=

# The first interpreter that is Python >= 3.12: explicit PYTHON, then the usual names on PATH
# (pyenv shims that refuse to run are skipped), then every version pyenv or uv knows about.
define find_python
for c in "$$PYTHON" python3.13 python3.12 python3.14 python3 python; do \
  [ -n "$$c" ] || continue; \
  if "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then command -v "$$c"; exit 0; fi; \
done; \
for root in "$$(pyenv root 2>/dev/null)" "$${PYENV_ROOT:-$$HOME/.pyenv}"; do \
  for c in "$$root"/versions/3.1[2-9]*/bin/python3; do \
    [ -x "$$c" ] && "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo "$$c"; exit 0; }; \
  done; \
done; \
c=$$(uv python find '>=3.12' 2>/dev/null) && [ -n "$$c" ] && { echo "$$c"; exit 0; }; \
exit 1
endef

.PHONY: help venv run proxy viewer test test-fast faults lint bench db-reset prune clean claude-cli

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@py=$$($(find_python)) || { \
	  echo "ccbridge needs Python 3.12 or newer (mitmproxy 12 requires it) and none was found."; \
	  echo "Install one, e.g. 'pyenv install 3.12', 'uv python install 3.12' or your system's python3.12 package,"; \
	  echo "or name it: make PYTHON=/path/to/python3.12 ..."; exit 1; }; \
	echo "using $$py ($$($$py --version))"; \
	[ -x $(PY) ] || $$py -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,postgres]'
	@touch $@

venv: $(VENV)/.installed ## Create the virtual environment and install ccbridge with its test tools

run: venv ## Start the proxy on 127.0.0.1:8082 and the viewer on 127.0.0.1:8083 (SQLite)
	@echo "Start Claude Code with:  ANTHROPIC_BASE_URL=http://$(PROXY_HOST):$(PROXY_PORT) claude"
	@echo "Viewer:                  http://127.0.0.1:$(VIEWER_PORT)/"
	@# mitmdump runs in the foreground and gets Ctrl-C itself (it writes what it captured, then exits);
	@# the viewer is stopped by its PID when the recipe ends, however it ends.
	@$(VENV)/bin/ccbridge-viewer --host 127.0.0.1 --port $(VIEWER_PORT) & viewer=$$!; \
	stop_viewer() { kill $$viewer 2>/dev/null; wait $$viewer 2>/dev/null; }; \
	trap stop_viewer EXIT INT TERM; \
	$(VENV)/bin/mitmdump -s addons/bridge.py --mode reverse:$(UPSTREAM) \
	  --listen-host $(PROXY_HOST) --listen-port $(PROXY_PORT) --set flow_detail=0 --set connection_strategy=lazy

proxy: venv ## Start only the proxy (reverse mode, 127.0.0.1:8082)
	@echo "Start Claude Code with:  ANTHROPIC_BASE_URL=http://$(PROXY_HOST):$(PROXY_PORT) claude"
	$(VENV)/bin/mitmdump -s addons/bridge.py --mode reverse:$(UPSTREAM) \
	  --listen-host $(PROXY_HOST) --listen-port $(PROXY_PORT) --set flow_detail=0 --set connection_strategy=lazy

viewer: venv ## Start only the viewer on 127.0.0.1:8083
	$(VENV)/bin/ccbridge-viewer --host 127.0.0.1 --port $(VIEWER_PORT)

claude-cli: ## Install the Claude Code CLI from npm into .tools/ (used by the end-to-end tests)
	@$(TOOLS)/node_modules/.bin/claude --version 2>/dev/null | grep -qF "$(CLAUDE_CODE_VERSION) " || npm install --silent --no-fund --no-audit --prefix $(TOOLS) @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	@$(TOOLS)/node_modules/.bin/claude --version

test: venv claude-cli ## Install everything and run every test
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv ## Unit tests only (no subprocesses, no browser)
	$(PY) -m pytest -m 'not e2e and not browser and not postgres' $(PYTEST_ARGS)

faults: venv ## Only the fault suite (PostgreSQL down 60 s, gzip bombs, 10,000 fuzzed exchanges); part of `make test`
	$(PY) -m pytest -m fault $(PYTEST_ARGS)

lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check addons viewer tests
	$(VENV)/bin/mypy

bench: venv ## Measure overhead, per-event delay, storage growth and viewer render times
	$(PY) -m tests.bench $(BENCH)

db-reset: venv ## Delete the local capture database (asks first)
	$(VENV)/bin/ccbridge db-reset

prune: venv ## Delete captures older than DAYS (default 30)
	$(VENV)/bin/ccbridge prune --days $${DAYS:-30}

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache $(TOOLS)
