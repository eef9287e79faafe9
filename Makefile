# The "Choosing an optimizer" course. Two commands do everything on a fresh machine:
#   make lab    create .venv, install, open JupyterLab on the first notebook
#   make test   create .venv if needed, install, run ruff, the unit tests and every notebook under nbval
#   make test-portable   every notebook under nbval again with other BLAS kernels, SIMD levels and thread counts

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
FIRST_NOTEBOOK := notebooks/01_gradient_descent_x2.ipynb
JOBS ?= 2
KERNEL_NAME := choosing-an-optimizer
# Notebooks must run with the inline backend: an exported MPLBACKEND=Agg would silently drop every figure.
NB_ENV := env -u MPLBACKEND PYTHONHASHSEED=0
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
NBVAL := $(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg \
	-n $(JOBS) --dist loadscope
# JupyterLab settings shipped with the course (no "get notified about Jupyter news?" pop-up on first start)
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
# `make slides` loads reveal.js, require.js, jQuery and MathJax from CDNs (SLIDES_ASSETS: a folder relative to
# slides/ holding them instead; REVEAL_URL_PREFIX moves reveal.js alone). `make slides-offline` copies them all into
# slides/vendor/: reveal.js, require.js and jQuery from npm at these exact versions (installed once into
# SLIDES_NPM), MathJax from the jupyter-server-mathjax package of requirements.txt.
SLIDES_ASSETS ?=
REVEAL_URL_PREFIX ?=
SLIDES_NPM := _build/slides-npm
SLIDES_NPM_PACKAGES := reveal.js@4.0.2 requirejs@2.3.7 jquery@3.7.1

.PHONY: help venv lab test test-portable lint unit nbval execute clean clean-grading student nbgrader slides html images \
	course-time experiments controls slides-offline slides-npm browser-install

help:
	@echo "make lab      set up .venv and open the course in JupyterLab"
	@echo "make test     set up .venv and run ruff, the unit tests and every notebook (nbval)"
	@echo "make test-portable  every notebook (nbval) under other BLAS kernels, SIMD levels and thread counts"
	@echo "make execute  re-run every notebook in place so the committed outputs stay current"
	@echo "make clean    remove .venv and generated files (never nbgrader_course/ nor slides/vendor/)"
	@echo "make clean-grading CONFIRM=yes  delete nbgrader_course/: the gradebook and every submission"
	@echo "make student  student versions of the notebooks (solutions replaced by stubs) in student/"
	@echo "make nbgrader an nbgrader course directory in nbgrader_course/, every notebook an assignment"
	@echo "make slides   reveal.js slides of every notebook in slides/ (they load their scripts from CDNs)"
	@echo "make slides-offline  the slides with every script copied into slides/vendor/: present with no network"
	@echo "make html     the course site (Sphinx book, works offline) from the executed notebooks in _build/html/"
	@echo "make images   redraw the README figures in images/ from course_lib"
	@echo "make course-time  execute every notebook and print seconds per notebook against the 150 s target"
	@echo "make experiments  rerun notebook 12's sweeps into course_lib/results/ (504 runs, about 7 minutes on 2 idle cores)"
	@echo "make controls  rerun the controls of notebook 12's headline results into course_lib/results/ (284 runs, about 7 minutes)"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed (3.11 is tested)"'
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check --no-deps -e .
	@touch $@

venv: $(STAMP)

$(LAB_OVERRIDES): tools/jupyterlab_overrides.json $(STAMP)
	@mkdir -p $(dir $@)
	cp tools/jupyterlab_overrides.json $@

lab: $(STAMP) $(LAB_OVERRIDES)
	$(BIN)/python -m ipykernel install --user --name $(KERNEL_NAME) --display-name "Python (choosing-an-optimizer)"
	$(NB_ENV) $(BIN)/jupyter lab $(ROOT_FLAG) $(FIRST_NOTEBOOK)

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP) browser-install slides-npm
	MPLBACKEND=Agg $(BIN)/python -m pytest tests -n $(JOBS)

nbval: $(STAMP)
	$(NB_ENV) $(NBVAL) $(NOTEBOOKS)

test: lint unit nbval

# The same nbval run once per setting of tools/portable_nbval.py (README, "How the tests work").
test-portable: $(STAMP)
	$(NB_ENV) $(BIN)/python tools/portable_nbval.py -- $(NBVAL) -q $(NOTEBOOKS)

execute: $(STAMP)
	$(NB_ENV) $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=180 --ExecutePreprocessor.kernel_name=python3 $(NOTEBOOKS)

student: $(STAMP)
	$(BIN)/python tools/make_student.py --output-dir student $(NOTEBOOKS)

nbgrader: $(STAMP)
	$(NB_ENV) $(BIN)/python tools/nbgrader_course.py --course-dir nbgrader_course $(NOTEBOOKS)

slides: $(STAMP)
	$(BIN)/python tools/make_slides.py --output-dir slides $(if $(SLIDES_ASSETS),--assets $(SLIDES_ASSETS),) \
		$(if $(REVEAL_URL_PREFIX),--reveal-url-prefix $(REVEAL_URL_PREFIX),) $(NOTEBOOKS)

slides-offline: $(STAMP) slides-npm
	$(BIN)/python tools/make_slides.py --output-dir slides --offline --npm-dir $(SLIDES_NPM)/node_modules $(NOTEBOOKS)

# reveal.js, require.js and jQuery for the offline slides (and tests/test_site.py), from the npm registry, once
slides-npm: $(SLIDES_NPM)/.installed

$(SLIDES_NPM)/.installed: Makefile
	@command -v npm >/dev/null || { echo "skipped: the offline slides need npm (Node.js), e.g. apt-get install npm"; \
		exit 0; } && \
	npm install --prefix $(SLIDES_NPM) --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
		$(SLIDES_NPM_PACKAGES) && touch $@

# Chromium, for tests/test_site.py (it opens the built site with the network off): installed only when missing, and
# only as root with apt-get (CI); elsewhere the test skips and says how to install it (under CI=true it fails).
browser-install:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "tests/test_site.py needs Chromium for its browser check: sudo apt-get install chromium"; fi

html: $(STAMP)
	$(BIN)/python tools/make_html.py --output-dir _build/html $(NOTEBOOKS)

images: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python tools/make_images.py --output-dir images

course-time: $(STAMP)
	$(NB_ENV) $(BIN)/python benchmarks/course_time.py $(NOTEBOOKS)

experiments: $(STAMP)
	$(BIN)/python experiments/where_it_matters.py

controls: $(STAMP)
	$(BIN)/python experiments/controls.py

# `make clean` removes what a command here rebuilds, and nothing a lecturer made: nbgrader_course/ (the gradebook and
# every submission) and anything else in slides/ (such as slides/vendor/, the offline copies of the slides' scripts)
# stay. `make clean-grading CONFIRM=yes` deletes nbgrader_course/ (docs/lecturers.md).
clean:
	rm -rf $(VENV) student _build .pytest_cache .ruff_cache
	rm -f slides/*.slides.html
	@test ! -d nbgrader_course || echo "kept nbgrader_course/ (grading data): make clean-grading CONFIRM=yes deletes it"

clean-grading:
	@test -d nbgrader_course || { echo "no nbgrader_course/ to delete"; exit 0; }; \
	if [ "$(CONFIRM)" = yes ]; then rm -rf nbgrader_course && echo "deleted nbgrader_course/"; \
	else echo "nbgrader_course/ holds the gradebook and every submission; to delete it for good, run" \
		"make clean-grading CONFIRM=yes (back it up first: nbgrader export writes grades.csv)"; exit 1; fi
