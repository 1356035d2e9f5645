# Two commands on a fresh machine:  make demo   and   make test
VENV ?= .venv
PYTHON := $(VENV)/bin/python
DEMO_DIR ?= demo_run

.PHONY: demo test test-slow test-ci test-all bench clean-demo slurm-up slurm-down

$(VENV)/.installed: requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

# Dang 2023's balanced MLP command on the bundled digits data: train, validate, plot.
demo: $(VENV)/.installed
	$(PYTHON) demo.py --out_dir $(DEMO_DIR)

# The fast test suite (slow tests: make test-all).
test: $(VENV)/.installed
	$(PYTHON) -m pytest -q -m "not slow" -n 2 tests

test-all: $(VENV)/.installed
	$(PYTHON) -m pytest -q -n 2 tests

# Only the slow tests: the trained-network checks, the printed paper commands that take minutes,
# the end-to-end reproduce.py run.
test-slow: $(VENV)/.installed
	$(PYTHON) -m pytest -q -m slow -n 2 --durations=15 tests

# What .ci/run runs: the README's quick command, then the slow tests (together make test-all's tests).
test-ci: test test-slow

bench: $(VENV)/.installed
	for script in bench/train_epoch.py bench/validate.py bench/synthetic.py bench/compile.py bench/gpu_check.py; do $(PYTHON) $$script || exit 1; done
	if [ -n "$(ORIGINAL)" ]; then $(PYTHON) bench/side_by_side.py --original "$(ORIGINAL)"; \
	else echo "bench/side_by_side.py: skipped (make bench ORIGINAL=/path/to/a/checkout/of/the/original times its scripts beside these)"; fi

# A single-node SLURM cluster on this machine (root, Debian/Ubuntu) for tests/test_slurm.py and
# for trying sweep.py --executor slurm; slurm-down stops what slurm-up started.
slurm-up:
	bash tests/slurm/up.sh

slurm-down:
	bash tests/slurm/down.sh

clean-demo:
	rm -rf $(DEMO_DIR)
