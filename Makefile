# The two commands of the README, plus the quality gates CI runs.
#   make demo   install (first time) and run the main job on the embedded model
#   make test   install (first time) and run the unit and integration tests
#   make check  ruff, ruff format --check, mypy --strict on src/

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
EXTRAS ?= local,dev,otlp,redis,limits,postgres,eval,ecosystem,server,phoenix,browser
# llama-cpp-python compiles llama.cpp: a portable, text-only build (~5 min on 2 cores,
# cached by pip afterwards).
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF

.PHONY: demo test check bench install

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed-$(EXTRAS)

demo: install
	$(BIN)/agentmesh run graphs/support_triage.yaml --models models/local.yaml \
		--input "Hi, I was charged twice for order A-1042 (Pro plan, annual). Please refund the duplicate charge." \
		--trace .agentmesh/demo-trace.jsonl
	$(BIN)/agentmesh trace show .agentmesh/demo-trace.jsonl

test: install
	$(PY) -m pytest tests/unit tests/integration

check: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy --strict src

bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/gateway_overhead.py
	$(PY) benchmarks/routing_overhead.py
	$(PY) benchmarks/faults.py
	$(PY) benchmarks/hedging.py
	$(PY) benchmarks/tracing_overhead.py
	$(PY) benchmarks/node_overhead.py
	$(PY) benchmarks/node_overhead.py --arms peer
	$(PY) benchmarks/node_instructions.py
	$(PY) benchmarks/router_eval.py
	$(PY) benchmarks/state_overhead.py
	$(PY) benchmarks/run_concurrency.py
	$(PY) benchmarks/redis_route_cost.py
	$(PY) benchmarks/startup.py
