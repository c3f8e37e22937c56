# `make demo`: install into .venv, then the whole path on the bundled sample in under a minute;
# `make test`: install, then the fast test suite. Every output goes to ignored folders (out/, models/, graphs/).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
KGATTR := $(BIN)/kgattr
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
export HF_HUB_OFFLINE := 1

# Quiet install: pip's version check, script-location notes and Python warnings off; the lines a machine-wide
# pip config prints for index folders that lack a package are dropped. Errors still show and still fail.
export PIP_DISABLE_PIP_VERSION_CHECK := 1
PIP := PYTHONWARNINGS=ignore $(BIN)/pip install -q --no-warn-script-location
QUIET := 2>&1 | { grep -v -e "is ignored: it is neither a file nor a directory" || true; }

# the demo's rule: an expert says mesh sports shoes never fasten with Velcro
DEMO_RULE := excludes/Footwear-Shoes-Sports-Shoes/Material-Mesh/Fastening-Velcro

.PHONY: install demo demo-extract test test-slow bench bench-scale bench-serve clean

$(KGATTR): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "kgattr needs Python 3.11 or newer: make PY=python3.11 ..."; exit 1; }
	$(PY) -m venv $(VENV)
	$(PIP) --upgrade pip $(QUIET)
	# the local CPU wheel first: any other torch spec would pull gigabytes of CUDA packages
	$(PIP) torch==2.13.0 $(QUIET)
	$(PIP) -e ".[dev]" $(QUIET)
	touch $(KGATTR)

install: $(KGATTR)

demo: install
	@mkdir -p out
	$(KGATTR) ontology induce data/sample.jsonl -o out/sample.ttl
	$(KGATTR) graph build data/sample.jsonl -o graphs/sample
	$(KGATTR) train data/sample.jsonl --ontology out/sample.ttl --out models/sample
	$(KGATTR) complete --model models/sample --sku S00020
	$(KGATTR) impute data/sample.jsonl --model models/sample -o out/sample.jsonl --precision 0.9
	$(KGATTR) rules add excludes --if "Material=Mesh" --then-not "Fastening=Velcro" --category "Sports Shoes" \
		--origin "expert: demo" --ontology out/sample.ttl
	$(KGATTR) rules test --catalog data/sample.jsonl --model models/sample --rule $(DEMO_RULE) --examples 3
	$(KGATTR) complete --model models/sample --sku S00020

# the text extractor: fine-tuned on the sample's own values (about 2 min on 2 cores), then one title read
demo-extract: install
	$(KGATTR) extract train data/sample.jsonl --out models/sample-extractor
	$(KGATTR) extract run --model models/sample-extractor --text "Roadster Men Navy Blue Slim Fit Cotton Shirt"

test: install
	$(BIN)/python -m pytest -q

# needs ../shared/data (skips without it)
test-slow: install
	$(BIN)/python -m pytest -q -m slow

CATALOG ?= ../shared/data/myntra-fashion-styles/catalog.jsonl.gz
DATA ?= ../shared/data
# every method on every catalog DATA/*/catalog.jsonl.gz and on a 1,500-product draw of each: a report per run in
# out/bench/NAME/all (or draw-N), one table per catalog in out/bench/summary.md; bench/catalogs.toml holds each
# catalog's metadata attributes and product limit. Then cold-start products apart, on CATALOG.
bench: install
	$(BIN)/kgattr evaluate $(DATA) --draw 1500 --settings bench/catalogs.toml --mask-rate 0.2 --seed 0 --report out/bench
	$(BIN)/kgattr evaluate $(CATALOG) --mask-rate 0.2 --seed 0 --cold-rate 0.05 --methods majority,tfidf,knn,text,kgattr --report out/bench-cold

# cost against catalog size: CATALOG's products drawn again at each of SIZES (generated catalogs: accuracy on them
# means nothing); train, impute and complete timed in their own processes; a stage whose memory would pass
# MAX_MEMORY GB is not run (or is stopped); ENCODER=static makes the cold text encoding ~100x cheaper. Report in
# out/bench-scale/growth.{md,json,png}; work/ keeps the models.
SIZES ?= 10000 44441 200000 1000000
MAX_MEMORY ?= 6
ENCODER ?= torch
bench-scale: install
	$(BIN)/kgattr bench-scale --from $(CATALOG) $(foreach n,$(SIZES),--size $(n)) --max-memory $(MAX_MEMORY) \
		--encoder $(ENCODER) --report out/bench-scale

# latency of `kgattr serve` (docs/serve.md): SERVE_MODEL (trained on CATALOG first if absent) served on a free local
# port, 50 clients for 60 s on stored products' completions, then 50 for 60 s on new products'
SERVE_MODEL ?= models/myntra
$(SERVE_MODEL): | install
	$(KGATTR) train $(CATALOG) --out $@

bench-serve: $(SERVE_MODEL)
	$(BIN)/python -m kgattr.serve.bench --model $(SERVE_MODEL) --catalog $(CATALOG) --clients 50 --seconds 60

clean:
	rm -rf models out graphs/sample
