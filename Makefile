# The project's commands. README.md documents each; .ci/run calls `make test`.
# Every target installs what it needs (virtualenv, Python packages, Kafka jars, Redis)
# and reinstalls nothing on a warm machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp is newer than pyproject.toml once its dependencies are installed, and newer
# than the grading core's sources once they are compiled (setup.py: an extension module
# wins over its .py, so an edited core must be compiled again).
STAMP := $(VENV)/.installed

.PHONY: help install kafka-up kafka-down redis-up redis-down lint format test soak demo clean

help:
	@echo "make demo        run gradestream end to end on the local broker and Redis"
	@echo "make test        lint, type-check and run every test (starts Kafka and Redis if needed)"
	@echo "make lint        ruff, mypy, deploy/ validation, generated docs up to date"
	@echo "make format      apply ruff's formatting and safe fixes"
	@echo "make kafka-up    start the local single-node Kafka (prints the bootstrap address)"
	@echo "make kafka-down  stop it"
	@echo "make redis-up    start the local Redis (prints its URL)"
	@echo "make redis-down  stop it"

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard streams/core/*.py) streams/replay.py streams/schedule.py streams/contracts.py streams/app/grading_step.py streams/app/states.py streams/app/clock.py streams/app/alignment.py
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "gradestream needs Python >= 3.11, found " + sys.version'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

kafka-up:
	@deploy/kafka/kafka.sh up

kafka-down:
	@deploy/kafka/kafka.sh down

redis-up:
	@deploy/redis/redis.sh up

redis-down:
	@deploy/redis/redis.sh down

# Also validates deploy/ without Docker or a cluster (compose-spec and Kubernetes schemas
# vendored by PyPI packages; deploy/validate.py) and that the generated docs are current.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy deploy/validate.py
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/docker-compose.yml
	$(BIN)/python deploy/validate.py
	$(BIN)/python -m streams.docgen --check

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The fixtures start Kafka and Redis when KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are unset;
# fetching the jars first keeps that out of the first test's time.
test: lint
	@[ -n "$$KAFKA_BOOTSTRAP_SERVERS" ] || deploy/kafka/kafka.sh jars
	$(BIN)/pytest

# The long fault-injection runs (docs/reliability.md): kills, rebalances, outages, hostile input.
soak: $(STAMP)
	@[ -n "$$KAFKA_BOOTSTRAP_SERVERS" ] || deploy/kafka/kafka.sh jars
	$(BIN)/pytest -m soak tests/reliability

demo: $(STAMP)
	$(BIN)/python -m streams.demo

# The streaming benchmark (docs/benchmarks.md): a broker and Redis of its own, ~40 minutes.
QUIX_VENV := .local/bench/quix-venv
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/python -m pip install -q --disable-pip-version-check 'quixstreams==3.28.1'
	$(BIN)/python bench/stream_bench.py --write-docs

clean:
	deploy/kafka/kafka.sh down
	deploy/redis/redis.sh down
	rm -rf .local $(VENV)
