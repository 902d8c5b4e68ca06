# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: run test lint venv worker scheduler clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

## make run: embedded PostgreSQL/Redis if DATABASE_URL/REDIS_URL are unset, migrations, demo data,
## provider doubles, an rq worker and the API on http://127.0.0.1:5000
run: venv
	$(PY) -m app.devserver

## make test: the whole suite against real PostgreSQL and Redis (running ones, or embedded ones)
test: venv lint
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .

worker: venv
	$(VENV)/bin/flask --app wsgi worker

scheduler: venv
	$(VENV)/bin/flask --app wsgi scheduler

clean:
	rm -rf $(VENV) instance
