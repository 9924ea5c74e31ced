# kefu: `make run` starts NATS + the four services; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test unit integration docs bench bench-backlog bench-console soak lock clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m devtools.run

test: $(STAMP)
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP)
	$(PY) -m pytest tests/integration tests/e2e tests/deploy

bench: $(STAMP)
	$(PY) -m devtools.bench

# does a request cost more with thousands waiting? (KEFU_BENCH_BACKLOGS, default 0,10000,100000)
bench-backlog: $(STAMP)
	$(PY) -m devtools.bench backlog

# the console's live stream with many pages open (KEFU_BENCH_PAGES, KEFU_BENCH_EVENTS, KEFU_BENCH_RATE)
bench-console: $(STAMP)
	$(PY) -m devtools.bench_console

# a long run (one million requests by default; KEFU_SOAK_COUNT, KEFU_SOAK_RATE): memory must stay flat
soak: $(STAMP)
	$(PY) -m devtools.bench soak

docs: $(STAMP)
	$(PY) -m devtools.gen_docs
	$(PY) -m devtools.gen_dashboards

# the image's pinned, hashed dependencies (requirements.lock) from pyproject.toml
lock: $(STAMP)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --no-header --quiet -o requirements.lock.new
	{ sed -n 1,2p requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp
	rm requirements.lock.new && mv requirements.lock.tmp requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
