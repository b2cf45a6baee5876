# Two entry points: `make book` (set up, run every notebook, build the book) and
# `make test` (set up, unit tests, notebook checks, strict book build).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KERNEL := sublim
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Seconds one notebook cell may run before the run fails.
CELL_TIMEOUT := 3600

.PHONY: setup book notebooks html test unit nbval book-strict built-book check-book clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check --no-deps \
		--no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) \
		--display-name "Python (sublim)"
	touch $@

# Execute each chapter in place at the book profile, the parameters in the notebook.
notebooks: setup
	@for nb in $(NOTEBOOKS); do \
		echo "== executing $$nb"; \
		$(BIN)/papermill --kernel $(KERNEL) --cwd notebooks \
			--execution-timeout $(CELL_TIMEOUT) "$$nb" "$$nb" || exit 1; \
	done

html: setup
	$(BIN)/jupyter-book build . --keep-going

book: notebooks html
	@echo "Book built: _build/html/index.html"

unit: setup
	$(BIN)/python -m pytest tests

# Re-run every committed notebook and compare each text output with the stored one.
nbval: setup
	$(BIN)/python -m pytest --nbval --nbval-current-env \
		--nbval-cell-timeout=$(CELL_TIMEOUT) notebooks

# Warnings are errors, broken references are reported (-n).
book-strict: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

# Checks that need the built pages: the quoted numbers and the rendered figures.
built-book: book-strict
	$(BIN)/python -m pytest tests/test_book_numbers.py tests/test_book_build.py

test: unit nbval built-book

# Open each built page in headless Chromium (Debian package `chromium`): figures,
# equations, links, and no request to any other host. One screenshot per page.
check-book: html
	$(BIN)/python tools/check_book.py --html-dir _build/html --screenshots _build/screenshots

clean:
	rm -rf _build .cache
