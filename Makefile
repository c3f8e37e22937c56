# One entry point: `make demo` installs and runs the main job on the sample; `make test` installs and tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

.PHONY: install demo test test-slow bench clean

$(BIN)/kgattr: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the local CPU wheel first: any other torch spec would pull gigabytes of CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/kgattr

install: $(BIN)/kgattr

demo: install
	$(BIN)/kgattr sample -o data/sample.jsonl
	$(BIN)/kgattr ontology induce data/sample.jsonl -o ontology/sample.ttl
	$(BIN)/kgattr graph build data/sample.jsonl -o graphs/sample --graphml
	$(BIN)/kgattr extract train data/sample.jsonl --out models/sample-extractor
	$(BIN)/kgattr extract run --model models/sample-extractor --text "Roadster Men Navy Blue Slim Fit Cotton Shirt"
	$(BIN)/kgattr train data/sample.jsonl --ontology ontology/sample.ttl --extractor models/sample-extractor --out models/sample
	$(BIN)/kgattr complete --model models/sample --sku S00002
	$(BIN)/kgattr impute data/sample.jsonl --model models/sample -o out/sample.jsonl --min-confidence 0.6

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

clean:
	rm -rf models out graphs/sample
