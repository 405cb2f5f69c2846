# The course's commands. `make book` and `make test` need nothing but python3 (3.10+).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BOOK_FLAGS := --config book/_config.yml --toc book/_toc.yml --path-output book -W --keep-going
export COOC_SCALE ?= smoke

.PHONY: help book test lint unit notebooks check-exercises student-copy benchmarks clean

help:
	@echo "make book                     execute every notebook (smoke scale), build book/_build/html"
	@echo "make test                     lint, unit tests, every notebook, the exercise checks"
	@echo "make check-exercises [CHAPTER=NN]   check your answers"
	@echo "make student-copy DEST=dir    copy the course without the solutions"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)
	@echo "The book is at $(CURDIR)/book/_build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check .

# Unit tests, the book's structure, the exercise checks, then every notebook through nbval.
test: lint $(STAMP)
	$(BIN)/python -m pytest tests --nbval-lax --nbval-current-env chapters exercises

check-exercises: $(STAMP)
	$(BIN)/python -m exercises.checker $(if $(CHAPTER),--chapter $(CHAPTER))

student-copy:
	@test -n "$(DEST)" || { echo "Say where to write it: make student-copy DEST=../course-for-students"; exit 2; }
	$(PYTHON) -m exercises.student_copy "$(DEST)"

benchmarks: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python "$$script"; done

clean:
	rm -rf book/_build .pytest_cache
