# NeonHub agent scheduler. `make run` starts the whole stack, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: run test lint format migrate install install-dev install-bench clean bench

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# Test, lint and benchmark tools, on top of the runtime set.
$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# The benchmarks' peers (django-q2, django-celery-results) and py-spy.
$(VENV)/.installed-bench: $(VENV)/.installed-dev requirements-bench.txt
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@

install-bench: $(VENV)/.installed-bench

# A newcomer's first run writes a local .env (DEBUG on, a generated secret
# key) that settings read in every process and manage.py command; the real
# environment overrides it.
.env:
	@printf 'DEBUG=1\nSECRET_KEY=%s\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > $@
	@echo "wrote .env (DEBUG=1 and a generated SECRET_KEY) for local use"

# The whole stack: SQLite by default, and a private Redis when none answers.
# Ctrl-C stops every process it started.
run: install .env
	@redis_pid=$$(bin/ensure-redis) || exit 1; \
	trap '[ -n "$$redis_pid" ] && kill $$redis_pid 2>/dev/null' EXIT; \
	$(BIN)/python manage.py migrate --noinput && \
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0 && \
	{ $(BIN)/python manage.py seed_demo || true; } && \
	echo "NeonHub on http://127.0.0.1:$(PORT)/  (admin: /admin/, API: /api/, docs: /api/docs/)" && \
	bin/start-processes web worker beat

# The whole suite against real Redis and the database in DATABASE_URL (SQLite
# by default). Tests use their own Redis database number so a running stack
# is not disturbed.
test: install-dev
	@export REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} DEBUG=0; \
	export SECRET_KEY=$${SECRET_KEY:-test-secret-key-that-is-long-enough-for-hmac}; \
	redis_pid=$$(bin/ensure-redis) || exit 1; \
	trap '[ -n "$$redis_pid" ] && kill $$redis_pid 2>/dev/null' EXIT; \
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)

# Every benchmark at a small size (a few minutes in all); needs PostgreSQL on
# 127.0.0.1:5432. bench/README.md gives the full sizes.
bench: install-bench
	@export REDIS_URL=$${BENCH_REDIS_URL:-redis://127.0.0.1:6379/14}; \
	redis_pid=$$(bin/ensure-redis) || exit 1; \
	trap '[ -n "$$redis_pid" ] && kill $$redis_pid 2>/dev/null' EXIT; \
	$(BIN)/python bench/dispatch_lag.py --agents 200 --redis $$REDIS_URL && \
	$(BIN)/python bench/throughput.py --runs 300 --redis $$REDIS_URL && \
	$(BIN)/python bench/event_latency.py --clients 50,200 --redis $$REDIS_URL && \
	$(BIN)/python bench/event_latency.py --clients 200 --web-processes 2 --redis $$REDIS_URL && \
	$(BIN)/python bench/history.py --rows 20000 --agents 200 --requests 50 --redis $$REDIS_URL && \
	$(BIN)/python bench/admission.py --runs 2000 --repeats 20 --redis $$REDIS_URL && \
	$(BIN)/python bench/admission_lock.py --runs 2000 --seconds 3 --redis $$REDIS_URL && \
	$(BIN)/python bench/retention.py --sessions 20000 --redis $$REDIS_URL && \
	$(BIN)/python bench/stats.py --sessions 50000 --others 50000 --repeats 10 --redis $$REDIS_URL

# Style, the layer contracts (pyproject.toml) and types. mypy's Django plugin
# loads the settings, which want a secret key.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	SECRET_KEY=$${SECRET_KEY:-lint-only-secret-key} $(BIN)/mypy

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: install
	$(BIN)/python manage.py migrate

clean:
	rm -rf $(VENV) .run staticfiles .pytest_cache .coverage test_db.sqlite3*
