# make run   -- set up .venv (first time only) and serve the app on 127.0.0.1:7860
# make test  -- set up .venv (first time only) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test test-quick lint bench chromium clean

$(STAMP): requirements.txt requirements-bundled.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-bundled.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) app.py

# Browser tests need Debian's chromium; install it when missing (root only), else they skip.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: browser tests will skip"; \
	  else echo "chromium missing and not root: browser tests will skip"; fi; }

test: $(STAMP) chromium
	$(PY) -m pytest $(PYTEST_ARGS)

test-quick: $(STAMP)
	$(PY) -m pytest -m "not slow" -x $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check valdemo tests benchmarks app.py

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache tests/artifacts
