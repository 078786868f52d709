# smartcrop — the two commands a new clone needs:
#   make demo   set up .venv and crop a demo clip (or VIDEO=path) to 9:16 in one process
#   make test   set up .venv, start (or reuse) the local Kafka + MinIO stack, run every test

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
VIDEO  ?=
OUT    ?= demo-output
PYTEST_ARGS ?=

.PHONY: demo test venv stack-up stack-down bench lint clean tools

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[dev,openvino]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/smartcrop demo $(if $(VIDEO),--video "$(VIDEO)") --out "$(OUT)"

test: $(STAMP)
	$(BIN)/smartcrop stack up
	$(BIN)/python -m pytest $(PYTEST_ARGS)

stack-up: $(STAMP)
	$(BIN)/smartcrop stack up --with-services

stack-down: $(STAMP)
	$(BIN)/smartcrop stack down

tools: $(STAMP)
	$(BIN)/python -m tests.tools

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

lint: $(STAMP)
	$(BIN)/ruff check services tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
