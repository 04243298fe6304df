# Two entry points: `make run` (set up, then the main job) and `make test` (set up, then every test).
VENV := .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.installed

.PHONY: setup setup-vllm setup-browser setup-postgres run test bench clean

$(SETUP_STAMP): pyproject.toml
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU torch build first: an unpinned resolve would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(SETUP_STAMP)

setup: $(SETUP_STAMP)

# vLLM's CPU build has its own venv (it pins its own stack); idempotent, ~0 s once done.
setup-vllm: setup
	bash scripts/setup_vllm.sh

# Debian's chromium for the real-browser UI tests; idempotent.
setup-browser:
	bash scripts/setup_browser.sh

# Debian's PostgreSQL server binaries: the tests start their own throwaway server (shared sessions); idempotent.
setup-postgres:
	bash scripts/setup_postgres.sh

run: setup
	$(VENV)/bin/valuedesk ui

# --durations: the 15 slowest tests are printed at the end of every run (CI included).
test: setup setup-vllm setup-browser setup-postgres
	VALUEDESK_REQUIRE_VLLM=1 VALUEDESK_REQUIRE_POSTGRES=1 $(PY) -m pytest -q --durations=15

clean:
	rm -rf $(VENV) .venv-vllm .valuedesk
