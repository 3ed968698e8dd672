# One command to set up and launch (`make run`), one to test (`make test`).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
API_PORT ?= 8000

.PHONY: setup run api demo worker test e2e lint bench clean

# torch first, pinned: pip then takes the CPU build shipped on this disk (a GPU machine gets CUDA torch),
# and the ranges in requirements.txt, which 2.13.0 satisfies, install nothing more.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet -e ".[scale]"   # the xmtc command on this checkout, and Ray (the [scale] extra)
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/streamlit run app.py --server.port $(PORT)

# The REST API for other systems (OpenAPI at http://127.0.0.1:$(API_PORT)/docs); tokens: xmtc tokens create.
api: setup
	$(BIN)/xmtc serve --port $(API_PORT)

demo: setup
	$(BIN)/xmtc demo

worker: setup
	$(BIN)/xmtc worker

lint: setup
	$(BIN)/ruff check .

# Two processes (pytest-xdist): many tests wait on subprocesses, servers and leases, so two share the 2 cores well.
test: setup lint
	$(BIN)/python -m pytest -n 2

# The real-browser flow: Debian's Chromium (apt-get install chromium) driven by Playwright; screenshots of a
# failure land in test-artifacts/.
e2e: setup
	$(BIN)/python -m pytest -m e2e

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
