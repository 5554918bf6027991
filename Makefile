# Conveniences; the README's commands need nothing but Python.
.PHONY: setup test models shell

setup:
	scripts/setup

test: setup
	.venv/bin/python -m pytest

models: setup
	scripts/train-models

shell: setup
	.venv/bin/lstm-repl
