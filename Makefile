# The course's commands. `make book` and `make test` need nothing but python3 (3.11+).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# make test: nbval executes each notebook once and keeps it (conftest.py --save-executed);
# the book is then built from those copies with execution off (book/stage_executed.py).
EXECUTED := $(CURDIR)/book/_build/executed
STAGE := $(CURDIR)/book/_build/stage
STAGED_FLAGS := --config $(STAGE)/book/_config_executed.yml --toc $(STAGE)/book/_toc.yml \
	--path-output $(CURDIR)/book -W --keep-going --all
# The unit tests in two workers on the two cores, one torch thread each (1.3x faster than
# one process); the notebooks in two workers too, a whole notebook per worker at a time (the
# README gives the times). make test first trains the runs the chapters and the slow tests
# share, two at a time (book/train_shared_runs.py, as make book does): inside the tests one
# worker would train them one after the other. ensure_trained waits for a run another
# process is training, never trains twice.
UNIT := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 tests
NOTEBOOKS := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile --nbval-lax \
	--nbval-current-env chapters exercises
SLOWEST := --slowest-file $(CURDIR)/book/_build/slowest.json
export COOC_SCALE ?= smoke

.PHONY: help book check-render test quick lint unit notebooks check-exercises student-copy grade benchmarks gpu-check reproduce-cpu clean

help:
	@echo "make book                     execute every notebook (smoke scale), build book/_build/html"
	@echo "make test                     lint, unit tests, nbval, the book and its render check"
	@echo "make test CHAPTER=07          one chapter: its notebook, its exercise set, its modules' tests"
	@echo "make quick                    lint and the unit tests, no notebook (under 2 minutes)"
	@echo "make check-render             check the built book's pages (after make book)"
	@echo "make notebooks                every notebook through nbval, without building the book"
	@echo "make check-exercises [CHAPTER=NN]   check your answers"
	@echo "make student-copy DEST=dir    copy the committed course without the solutions"
	@echo "make grade SUBMISSIONS=dir [OUT=grades]   grade a class: grades.csv, Gradescope JSON"
	@echo "make reproduce-cpu            chapters 5 and 7 from fresh toy runs: cooc_minimal/results/*.json"
	@echo "make gpu-check                one command on a GPU machine (under 5 min): cooc_minimal/results/gpu_<card>.json"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The shared runs trained first (two at a time), then every notebook executed once, two at a
# time, and the book built from those executions: make test's path, without the unit tests.
book: $(STAMP)
	$(BIN)/python book/train_shared_runs.py
	rm -rf $(EXECUTED)
	$(NOTEBOOKS) --save-executed $(EXECUTED)
	$(BIN)/python book/stage_executed.py $(EXECUTED) $(STAGE)
	$(BIN)/jupyter-book build $(STAGE) $(STAGED_FLAGS)
	@echo "The book is at $(CURDIR)/book/_build/html/index.html"

# In a student copy (no exercises/solutions/) the students' answer files are not linted.
lint: $(STAMP)
	$(BIN)/ruff check . $(if $(wildcard exercises/solutions),,--extend-exclude 'exercises/ex[0-9][0-9]_*.py')

# Tables, math, errors and offline assets of every built page (book/check_render.py).
check-render: $(STAMP)
	$(BIN)/python book/check_render.py book/_build/html

# Unit tests, the book's structure, the exercise checks and every notebook through nbval,
# each notebook executed once and kept; then the book is built from those executions and
# the render check reads its pages. CHAPTER=NN: that chapter's notebook, exercise set and
# module tests only (conftest.py --chapter), no book.
test: lint $(STAMP)
ifdef CHAPTER
	$(BIN)/python -m pytest tests --nbval-lax --nbval-current-env chapters exercises --chapter $(CHAPTER)
else
	rm -rf $(EXECUTED) book/_build/slowest.json
	$(BIN)/python book/train_shared_runs.py
	$(UNIT) $(SLOWEST)
	$(NOTEBOOKS) --save-executed $(EXECUTED) $(SLOWEST)
	$(BIN)/python book/stage_executed.py $(EXECUTED) $(STAGE)
	$(BIN)/jupyter-book build $(STAGE) $(STAGED_FLAGS)
	$(BIN)/python book/check_render.py book/_build/html
endif

# The contributor's inner loop: lint and the unit tests, no notebook, without the
# integration tests marked slow (grading a class, torchrun, the claims on the shared runs).
quick: lint $(STAMP)
	$(UNIT) -m "not slow"

# Every notebook through nbval (one at a time: pytest --nbval-lax chapters/NN_x.ipynb).
notebooks: $(STAMP)
	$(NOTEBOOKS)

check-exercises: $(STAMP)
	$(BIN)/python -m exercises.checker $(if $(CHAPTER),--chapter $(CHAPTER))

student-copy: $(STAMP)
	@test -n "$(DEST)" || { echo "Say where to write it: make student-copy DEST=../course-for-students"; exit 2; }
	$(BIN)/python -m exercises.student_copy "$(DEST)"

grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "Say where the submissions are: make grade SUBMISSIONS=dir [OUT=grades]"; exit 2; }
	$(BIN)/python -m exercises.grade "$(SUBMISSIONS)" --out "$(or $(OUT),grades)" $(if $(TIME_LIMIT),--time-limit $(TIME_LIMIT)) $(if $(CHAPTER),--chapter $(CHAPTER)) $(if $(JOBS),--jobs $(JOBS))

benchmarks: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python "$$script"; done

# The GPU machine's check: device, each appendix C config at the paper's batch (seconds per
# step, peak memory, chunks), compile/channels_last/precision speed-ups, stop and resume,
# the evaluation command, 16/24 GB cards, the CUDA tests (benchmarks/gpu_check.py).
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

# Chapters 5 and 7 at smoke scale from fresh toy runs, and the bag-embedding benchmark:
# cooc_minimal/results/*.json (each figure with its seed, command, commit and time).
reproduce-cpu: $(STAMP)
	$(BIN)/python chapters/results/reproduce_cpu.py

clean:
	rm -rf book/_build .pytest_cache
