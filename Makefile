# Two commands for a new user (see README):  make demo   |   make test
# Everything else is a building block they call. Every step is idempotent: stamps record what is
# installed, so a second `make demo` skips straight to running the job.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
RUN_DATE ?= 2026-11-01
ENV ?= local
# pytest selection/flags can be narrowed by the caller: make test PYTEST_ARGS="-k graph"
PYTEST_ARGS ?=

.PHONY: install venv jars demo test bench lock clean dist

install: $(VENV)/.installed .jars/.resolved

$(VENV)/bin/python:
	@echo "==> [1/3] creating virtualenv $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)

# Pinned packages from the lock; pip's download cache (~/.cache/pip) makes re-installs fast.
$(VENV)/.installed: $(VENV)/bin/python requirements.txt constraints.txt setup.py
	@echo "==> [2/3] installing pinned Python packages (torch brings CUDA libs: several GB on a fresh machine)"
	$(PIP) install --progress-bar off -r requirements.txt -c constraints.txt
	$(PIP) install --progress-bar off --no-deps -e .
	@touch $@

# JVM jars (Delta) resolved once into .jars/ by Maven; jobs never download at run time.
.jars/.resolved: jvm/pom.xml
	@echo "==> [3/3] resolving JVM jars with Maven into .jars/"
	rm -rf .jars
	mvn -B -q -f jvm/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/.jars
	@ls .jars/delta-spark_*.jar >/dev/null
	@touch $@

jars: .jars/.resolved

# The main job(s) on the embedded default: local Spark, Delta under ./lakehouse, MLflow local.
demo: install
	@echo "==> running the pipeline for $(RUN_DATE) (env=$(ENV))"
	$(VENV)/bin/cgov pipeline --run-date $(RUN_DATE) --env $(ENV)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/bench_connected_components.py

# The wheel for spark-submit --py-files, plus a .zip copy (pyspark only puts .zip/.egg/.jar
# py-files on executors' sys.path). build/ is removed first: setuptools never cleans it, so a
# deleted module would otherwise still be shipped.
dist: install
	rm -rf build dist
	$(PIP) wheel --no-deps --no-build-isolation -w dist .
	cp dist/creatorgov-*.whl dist/$$(basename dist/creatorgov-*.whl -py3-none-any.whl).zip
	@ls -l dist

lock: $(VENV)/bin/python
	$(PIP) install --progress-bar off -r requirements.txt
	( echo "# Lock file: every package of the tested environment (python 3.11, linux x86_64)."; \
	  echo "# Regenerate with \`make lock\` after changing requirements.txt, then run \`make test\`."; \
	  $(PIP) freeze --exclude-editable | grep -v '^creatorgov' ) > constraints.txt

clean:
	rm -rf lakehouse spark-warehouse metastore_db derby.log build dist *.egg-info
