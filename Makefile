# Two entry points: `make run` (set up, then the main job) and `make test` (set up, then every test).
VENV := .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.installed

.PHONY: setup run test bench clean

$(SETUP_STAMP): pyproject.toml
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(SETUP_STAMP)

setup: $(SETUP_STAMP)

run: setup
	$(VENV)/bin/valuedesk build
	$(VENV)/bin/valuedesk ui

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .valuedesk
