# Two entry points for a fresh machine: `make run` (the main job) and `make test` (the whole suite).
# Both create .venv/ on first use and install what they need into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The main job's knobs; `make run STEPS=300 BATCH_SIZE=64` gives a quick CPU taste.
CONFIG ?= groovae_4bar
STEPS ?=
BATCH_SIZE ?=

.PHONY: setup audio node browser run test

setup: $(VENV)/.installed audio node browser

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# FluidSynth with a General MIDI soundfont through apt when possible (see the script).
audio:
	@bash scripts/install_audio.sh

# Node and js/node_modules for the magenta-js tests and the web page's scripts (js/dist), through
# apt and npm when possible (the script).
node:
	@bash scripts/install_node.sh

# Debian's chromium for the web page's browser tests, through apt when possible (the script).
browser:
	@bash scripts/install_browser.sh

run: setup
	$(PY) -m helpers.pipeline --config $(CONFIG) $(if $(STEPS),--steps $(STEPS)) \
	  $(if $(BATCH_SIZE),--batch-size $(BATCH_SIZE))

# GROOVAE_SMOKE=1 makes the notebooks train and sample the tiny config, so the suite stays short.
test: setup
	$(VENV)/bin/ruff format --check helpers tests bench
	$(VENV)/bin/ruff check helpers tests bench
	GROOVAE_SMOKE=1 GROOVAE_REQUIRE_BACKENDS=tensorflow,jax,torch $(PY) -m pytest -n 2 --dist loadgroup --nbmake --nbmake-timeout=900 --durations=25 -p no:cacheprovider
