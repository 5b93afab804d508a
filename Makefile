# Entry points. Everything they install goes under .local/ (git-ignored).
#   make test   the whole test suite against real DynamoDB Local and SeaweedFS
#   make run    the whole system on 127.0.0.1 (see README, "Local stack")

SHELL := /usr/bin/env bash
CARGO ?= cargo

.PHONY: install install-all pdf-tools test run bench-handlers clean-local-data

install:
	scripts/install.sh

install-all:
	scripts/install.sh --all

# qpdf, poppler (pdftoppm), zbar and pyHanko: the independent checkers of the stamping tests.
pdf-tools:
	bash scripts/install-pdf-tools.sh

# Two runs: every test against fresh DynamoDB Local and SeaweedFS, then the end-to-end tests
# through a throw-away local stack (the same one `make run` starts, on free ports).
test: install-all pdf-tools
	scripts/with-test-services.sh $(CARGO) test --workspace
	scripts/with-local-stack.sh $(CARGO) test -p emeterai-tests --test local_stack -- --include-ignored

# Handler cost per request against DynamoDB Local and SeaweedFS (numbers in BENCHMARKS.md).
bench-handlers: install
	scripts/with-test-services.sh $(CARGO) bench -p emeterai-tests --bench handlers

run: install-all
	scripts/run-local.sh

# Stops a `make run` whose terminal is gone (Ctrl-C does the same where it runs).
.PHONY: stop
stop:
	scripts/stop-local.sh

# Forgets the local stack's tables and objects (keeps the installed components).
clean-local-data:
	rm -rf .local/data
