# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: run test lint venv worker scheduler clean fonts chromium miniapp-deps miniapp-h5 miniapp-builds miniapp-test

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

## make run: embedded PostgreSQL/Redis if DATABASE_URL/REDIS_URL are unset, migrations, demo data,
## provider doubles, an rq worker and the API on http://127.0.0.1:5000
run: venv fonts miniapp-h5
	$(PY) -m app.devserver

## make test: the whole suite against real PostgreSQL and Redis (running ones, or embedded ones)
test: venv lint fonts chromium miniapp-test
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

## the mini-app (miniapp/, uni-app): npm ci only when package-lock.json changed, builds only when sources changed
MINIAPP := miniapp
NPM_STAMP := $(MINIAPP)/node_modules/.installed-from-lock
MINIAPP_SRC := $(shell find $(MINIAPP)/src -type f 2>/dev/null) $(MINIAPP)/index.html $(MINIAPP)/vite.config.js $(MINIAPP)/package.json

$(NPM_STAMP): $(MINIAPP)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "the mini-app needs Node.js 20 and npm (apt-get install nodejs npm)"; exit 1; }
	cd $(MINIAPP) && npm ci --no-audit --no-fund
	touch $(NPM_STAMP)

$(MINIAPP)/dist/build/h5/index.html: $(NPM_STAMP) $(MINIAPP_SRC)
	cd $(MINIAPP) && npx uni build

$(MINIAPP)/dist/build/mp-weixin/app.json: $(NPM_STAMP) $(MINIAPP_SRC)
	cd $(MINIAPP) && npx uni build -p mp-weixin

$(MINIAPP)/dist/build/mp-alipay/app.json: $(NPM_STAMP) $(MINIAPP_SRC)
	cd $(MINIAPP) && npx uni build -p mp-alipay

miniapp-deps: $(NPM_STAMP)

## the H5 bundle Flask serves at http://127.0.0.1:5000/m/
miniapp-h5: $(MINIAPP)/dist/build/h5/index.html

miniapp-builds: $(MINIAPP)/dist/build/h5/index.html $(MINIAPP)/dist/build/mp-weixin/app.json $(MINIAPP)/dist/build/mp-alipay/app.json

## the three builds, then jest (before pytest: CI reads pytest's closing line)
miniapp-test: miniapp-builds
	cd $(MINIAPP) && npx jest --ci

lint: venv
	$(VENV)/bin/ruff check .

worker: venv
	$(VENV)/bin/flask --app wsgi worker

scheduler: venv
	$(VENV)/bin/flask --app wsgi scheduler

clean:
	rm -rf $(VENV) instance
