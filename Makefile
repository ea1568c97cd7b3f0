# The two commands of the README: `make run` (set up, then start the bot or a terminal
# chat) and `make test`. Everything else here serves those two.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup model index bench bench-xquad perf clean

run: index
	@if [ -n "$$TELEGRAM_BOT_TOKEN" ]; then $(BIN)/qabot run; else \
	  echo "TELEGRAM_BOT_TOKEN is not set: starting the terminal chat instead."; $(BIN)/qabot chat; fi

test: setup
	$(BIN)/python -m pytest

setup: $(STAMP)

# torch is installed first, pinned. Which build pip finds depends on its index: our
# machines serve the CPU build of 2.13.0 beside PyPI; PyPI itself serves Linux the CUDA
# build (several GB). On an ordinary machine, `make setup TORCH_INDEX=<PyTorch's CPU wheel
# index>` (the Dockerfile names it) installs the CPU-only build.
TORCH_INDEX ?=
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

model: setup
	$(BIN)/qabot model prepare

index: model
	$(BIN)/qabot index build --if-stale

bench: setup
	$(BIN)/python bench/corpora.py

bench-xquad: setup
	$(BIN)/python bench/xquad.py

bench-followups: setup
	$(BIN)/python bench/followups.py

perf: setup
	$(BIN)/python bench/perf.py

clean:
	rm -rf $(VENV) data
