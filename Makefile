# The two commands a newcomer needs: `make run` and `make test`. Only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV := .uplift-dev

.PHONY: run test lint fuzz bench clean deb deb-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

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

test: lint
	$(BIN)/python -m pytest -q

# The property-based, stateful and fuzz tests (test_*_props.py) with many more examples than CI.
fuzz: $(VENV)/.installed-dev
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:timeout $(wildcard tests/*/test_*_props.py)

# uplift-capture_<version>_<arch>.deb in dist/ (packaging/deb/build says how and which version).
deb: $(VENV)/.installed
	packaging/deb/build

# Slow (minutes; root; Debian): the .deb installed into a debootstrapped root (cached in
# .deb-test/), set up, uploading, upgraded and purged. Not part of `make test`.
deb-test: $(VENV)/.installed-dev
	UPLIFT_DEB_TEST=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/deb

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEV) build dist *.egg-info .deb-test
