# The two commands a newcomer needs: `make run` and `make test`. Only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV := .uplift-dev

.PHONY: run test lint fuzz bench clean lock deb deb-test screenshot

# Installs use the pinned versions (constraints.txt; constraints-dev.txt for the dev extra).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed constraints-dev.txt
	$(BIN)/python -m pip install -q -c constraints.txt -c constraints-dev.txt -e '.[dev]'
	touch $@

# Make constraints.txt (what `pip install '.[postgres]'` brings in) and constraints-dev.txt (what
# the dev extra adds under those pins) afresh, in a clean throw-away venv; their header comments
# are kept. Run with Python 3.11, the version they are made for.
lock:
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; py="$$tmp/venv/bin/python"; \
	$$py -m pip install -q --upgrade pip; \
	$$py -m pip install -q -e '.[postgres]'; \
	$$py -m pip freeze --exclude-editable > "$$tmp/deploy"; \
	$$py -m pip install -q -c "$$tmp/deploy" -e '.[dev]'; \
	$$py -m pip freeze --exclude-editable | grep -vxFf "$$tmp/deploy" > "$$tmp/dev"; \
	{ grep '^#' constraints.txt; cat "$$tmp/deploy"; } > "$$tmp/c"; \
	{ grep '^#' constraints-dev.txt; cat "$$tmp/dev"; } > "$$tmp/cd"; \
	mv "$$tmp/c" constraints.txt; mv "$$tmp/cd" constraints-dev.txt

# Everything `make run` writes stays in $(DEV)/ and captures/ (both git-ignored).
$(DEV)/config.toml:
	mkdir -p $(DEV)
	printf '%s\n' \
	  '# Written by `make run`: the daemon against the built-in sandbox. Delete $(DEV)/ to start over.' \
	  '[database]' 'url = "sqlite:///jobs.db"' \
	  '[upload]' 'settle_seconds = 2.0' \
	  '[capture]' 'camera_setup_selection = "single.front_on"' \
	  '[capture.movement]' 'activity = "golf"' 'movement = "full_swing"' \
	  '[[watch]]' 'path = "../captures"' \
	  '[athletes]' '"demo" = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"' \
	  '[sandbox]' 'data_dir = "sandbox"' > $@

run: $(VENV)/.installed $(DEV)/config.toml
	mkdir -p captures/demo
	@echo "Drop a .mov into ./captures/demo/ (or ./captures/<athlete-uuid>/)."
	@echo "Watch it in the log below, or run: $(BIN)/uplift-capture status --config $(DEV)/config.toml"
	@echo "Or open the console: http://127.0.0.1:8780/"
	@echo "What the sandbox received lands in $(DEV)/sandbox/received/."
	$(BIN)/uplift-capture run --sandbox --config $(DEV)/config.toml

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -n 3 --dist loadfile

# The property-based, stateful and fuzz tests (test_*_props.py) with many more examples than CI.
fuzz: $(VENV)/.installed-dev
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:timeout $(wildcard tests/*/test_*_props.py)

# uplift-capture_<version>_<arch>.deb in dist/ (packaging/deb/build says how and which version).
deb:
	packaging/deb/build

# Slow (minutes; root; Debian): the .deb installed into a debootstrapped root (cached in
# .deb-test/), set up, uploading, upgraded and purged. Not part of `make test`.
deb-test: $(VENV)/.installed-dev
	UPLIFT_DEB_TEST=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/deb

# daemon/web/static/screenshot.png afresh, from a live console (a sandbox and a daemon with files
# in a few states, photographed in Chromium): the README's picture never goes stale.
screenshot: $(VENV)/.installed-dev
	$(BIN)/python docs/screenshot.py

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEV) build dist *.egg-info .deb-test
