# One venv in the repository; `make setup` is idempotent (a stamp records the installed requirements).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all lint bench eik-env notebook-check

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The web page's test drives Debian's chromium (never a browser downloaded by Playwright); installed when
# missing and we are root, else that test skips and says why.
CHROMIUM := /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "$(CHROMIUM) missing and not root: the browser test will be skipped"; fi; }

demo: setup
	$(PY) -m pipeline demo --out demo_out

test: setup browser
	$(PY) -m pytest -q

test-all: setup browser
	$(PY) -m pytest -q -m "slow or not slow"

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m benchmarks.run

# The Kaggle submission notebook executed headless on a competition test-layout folder:
# make notebook-check DATA=DIR OUT=FILE.parquet
notebook-check: setup
	@test -n "$(DATA)" -a -n "$(OUT)" || { echo "usage: make notebook-check DATA=DIR OUT=FILE.parquet"; exit 2; }
	$(PY) -m kaggle_notebooks.run_notebook kaggle_notebooks/submission.ipynb --data-dir $(DATA) --out $(OUT)

# ECG-Image-Kit's generator (a page source for training and evaluation; never needed by the pipeline) in its
# own environment: make eik-env EIK=/path/to/ecg-image-kit-checkout
EIK_VENV := .venv-eik
eik-env:
	@test -n "$(EIK)" || { echo "usage: make eik-env EIK=/path/to/ecg-image-kit"; exit 2; }
	@test -f "$(EIK)/codes/ecg-image-generator/gen_ecg_images_from_data_batch.py" || \
		{ echo "$(EIK) is not an ECG-Image-Kit checkout (no codes/ecg-image-generator)"; exit 2; }
	test -x $(EIK_VENV)/bin/python || $(PYTHON) -m venv $(EIK_VENV)
	$(EIK_VENV)/bin/python -m pip install -q --upgrade pip
	$(EIK_VENV)/bin/python -m pip install -q -r synth/eik-requirements.txt
	@echo "ECG-Image-Kit environment ready: python -m synth.eik --generator $(EIK) ..."
