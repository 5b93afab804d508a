# Entry points. Everything they install goes under .local/ (git-ignored).
#   make test   the whole test suite against real DynamoDB Local and SeaweedFS
#   make run    the whole system on 127.0.0.1 (see README, "Local stack")

SHELL := /usr/bin/env bash
CARGO ?= cargo

.PHONY: install install-all pdf-tools web browser-tools drill-tools contract-tools lint-template test contract run drill bench-handlers bench-web clean-local-data

install:
	scripts/install.sh

install-all:
	scripts/install.sh --all

# qpdf, poppler (pdftoppm), zbar and pyHanko: the independent checkers of the stamping tests.
pdf-tools:
	bash scripts/install-pdf-tools.sh

# The web app's third-party files (pdf.js into web/vendor, axe-core), pinned, from npm.
web:
	scripts/install-web.sh

# Debian's Chromium and Playwright for Python (pinned) for the browser tests.
browser-tools:
	scripts/install-browser-tools.sh

# Locust (pinned) into .local/venv for the deadline drill.
drill-tools:
	scripts/install-drill-tools.sh

# schemathesis (pinned) into .local/schemathesis-venv for the contract run.
contract-tools:
	scripts/install-schemathesis.sh

# The template's gate: cfn-lint with the serverless rules (zero findings; each suppression sits in
# template.yaml with its reason) and SAM's own validation with its linter.
lint-template:
	scripts/install-lint-tools.sh
	.local/lint-venv/bin/cfn-lint template.yaml -a cfn_lint_serverless.rules
	SAM_CLI_TELEMETRY=0 .local/sam-venv/bin/sam validate --lint --region ap-southeast-3 -t template.yaml

# Two runs: every test against fresh DynamoDB Local and SeaweedFS, then the end-to-end tests
# through a throw-away local stack (the same one `make run` starts, on free ports): the HTTP ones,
# then the web app in a real browser (tests/browser, screenshots in .local/test-output/browser).
# The local-stack phase ends with a short deadline drill (30 s of load with faults, then settle
# and audit; reports in .local/test-output/drill). Last, the contract run (`make contract`) on a
# stack of its own: the drill's faults and data cannot touch what the fuzzer sees, nor the
# fuzzer's accounts the drill's audit (about 1.5 minutes: the stack's start, then schemathesis).
test: lint-template install-all pdf-tools web browser-tools drill-tools contract-tools
	scripts/with-test-services.sh $(CARGO) test --workspace --no-fail-fast
	scripts/with-local-stack.sh bash -c '$(CARGO) test -p emeterai-tests --test local_stack -- --include-ignored && .local/venv/bin/python -m pytest -q -p no:cacheprovider tests/browser && .local/venv/bin/python drill/drill.py --duration 30 --baseline 1 --out .local/test-output/drill'
	scripts/with-local-stack.sh tests/contract/run.sh

# The machine-readable contract fuzzed (issue 13): schemathesis with every check and the stateful
# phase against a throw-away local stack (tests/contract: settings, hooks and each exclusion with
# its reason; reports in .local/test-output/contract). `make test` ends with the same run.
contract: install-all web contract-tools
	scripts/with-local-stack.sh tests/contract/run.sh

# The web app's first load (bytes, time to interactive; numbers in BENCHMARKS.md).
bench-web: install-all web browser-tools
	scripts/with-local-stack.sh .local/venv/bin/python tests/browser/measure_first_load.py

# Handler cost per request against DynamoDB Local and SeaweedFS (numbers in BENCHMARKS.md).
bench-handlers: install
	scripts/with-test-services.sh $(CARGO) bench -p emeterai-tests --bench handlers

run: install-all web
	scripts/run-local.sh

# The deadline drill (issue 11, drill/README.md): Locust along the deadline's shape with faults,
# then the sweep run forward and `emeterai audit`. Against `make run`'s stack (another terminal),
# or `make drill HOST=https://...` against a deployment (no faults, no /dev routes there).
# DRILL_DURATION (seconds, 300) and DRILL_BASELINE (applicants at baseline, 2) set its size.
# For the release build: EMETERAI_RELEASE=1 make run, then EMETERAI_RELEASE=1 make drill.
HOST ?= http://127.0.0.1:$(or $(EMETERAI_PORT),3000)
DRILL_DURATION ?= 300
DRILL_BASELINE ?= 2
drill: drill-tools
	$(CARGO) build $(if $(filter 1,$(EMETERAI_RELEASE)),--release) --workspace --bins
	EMETERAI_MIDTRANS_URL=$${EMETERAI_MIDTRANS_URL:-http://127.0.0.1:$(or $(EMETERAI_MIDTRANS_SIM_PORT),3001)} \
		.local/venv/bin/python drill/drill.py --host $(HOST) --duration $(DRILL_DURATION) --baseline $(DRILL_BASELINE)

# Stops a `make run` whose terminal is gone (Ctrl-C does the same where it runs).
.PHONY: stop
stop:
	scripts/stop-local.sh

# Forgets the local stack's tables and objects (keeps the installed components).
clean-local-data:
	rm -rf .local/data
