# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: run test lint venv worker scheduler clean fonts chromium

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

## make run: embedded PostgreSQL/Redis if DATABASE_URL/REDIS_URL are unset, migrations, demo data,
## provider doubles, an rq worker and the API on http://127.0.0.1:5000
run: venv fonts
	$(PY) -m app.devserver

## make test: the whole suite against real PostgreSQL and Redis (running ones, or embedded ones)
test: venv lint fonts chromium
	$(PY) -m pytest -q

## the yearly certificate is drawn with Noto Sans CJK (Debian's fonts-noto-cjk); installed when missing and root
fonts:
	@fc-list 2>/dev/null | grep -q "Noto Sans CJK" || { [ "$$(id -u)" = 0 ] && \
		(apt-get install -y fonts-noto-cjk || (apt-get update && apt-get install -y fonts-noto-cjk)); } || \
		echo "fonts-noto-cjk is missing: install it (apt-get install fonts-noto-cjk) for the yearly certificate"

## browser tests drive Debian's Chromium through Playwright (never `playwright install`: no download here)
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		(apt-get install -y chromium || (apt-get update && apt-get install -y chromium)); } || \
		echo "chromium is missing: install it (apt-get install chromium) for the browser tests"

lint: venv
	$(VENV)/bin/ruff check .

worker: venv
	$(VENV)/bin/flask --app wsgi worker

scheduler: venv
	$(VENV)/bin/flask --app wsgi scheduler

clean:
	rm -rf $(VENV) instance
