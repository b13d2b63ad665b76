# Quick start:  make demo   (set up .venv, then synthesise -> convert -> pretrain -> evaluate on CPU)
#               make test   (set up .venv, then run the test suite)
VENV    := .venv
PYTHON  := $(VENV)/bin/python
S2I     := $(VENV)/bin/s2i
STAMP   := $(VENV)/.installed
DEMO    := demo

.PHONY: setup demo test bench clean

# torch and torchvision first, pinned to the builds that lie on this machine's disk
# (timm needs torchvision), then the project in editable mode with its test extras.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	bash scripts/demo.sh $(DEMO)

test: setup
	$(VENV)/bin/pytest -q

bench: setup
	$(PYTHON) scripts/bench_convert.py
	$(PYTHON) scripts/bench_pretrain.py

clean:
	rm -rf $(DEMO) runs
