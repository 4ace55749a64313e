# Credit score pipeline: common tasks. GNU make. `make` alone lists them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

EMULATOR_PORT ?= 4566
export EMULATOR_PORT
# `make provision` targets the local emulator unless told otherwise;
# `make provision AWS_ENDPOINT_URL=` (empty) provisions in real AWS.
AWS_ENDPOINT_URL ?= http://127.0.0.1:$(EMULATOR_PORT)

SHELL_SCRIPTS := localstack/start.sh localstack/stop.sh localstack/provision.sh \
	scripts/lib.sh scripts/check-contract-deps.sh scripts/dev.sh scripts/test.sh scripts/with-emulator.sh scripts/bench.sh scripts/vendor-swagger-ui.sh scripts/schemathesis.sh scripts/fuzz.sh scripts/soak.sh scripts/deny.sh scripts/tools-venv.sh scripts/dev-lambda.sh scripts/lint-deploy.sh images/build-local.sh infra/package.sh infra/lint.sh infra/deploy-local.sh .ci/run

.PHONY: help dev dev-stop dev-lambda dev-lambda-stop test lint lint-rust lint-sh fmt emulator-up emulator-down \
	provision bench package clean distclean schemathesis fuzz soak soak-deployed lint-infra lint-deny lint-deploy sbom image \
	lmi-template

help: ## list the targets
	@echo "Usage: make <target>"
	@echo
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: EMULATOR (ministack | moto | localstack), EMULATOR_PORT (4566), PORT (ingest, 4112), DEV_USER_SERVICE_PORT (4113),"
	@echo "           DEV_DETACH=1 (make dev returns at once), TEST_ARGS (extra cargo test args),"
	@echo "           IMAGE_STORAGE (make image: buildah storage, target/containers), KEDA_CRDS (lint-deploy)"

dev: ## run the whole pipeline locally (emulator, ingest, worker, dev User Service); Ctrl-C stops it
	@bash scripts/dev.sh

dev-stop: ## stop what `DEV_DETACH=1 make dev` left running
	@bash scripts/dev.sh stop

dev-lambda: ## deploy infra/template.yaml into MiniStack (API Gateway, Lambda, SQS mapping) and print a curl; again = update
	@bash scripts/dev-lambda.sh

dev-lambda-stop: ## stop the dev User Service and the emulator that `make dev-lambda` started
	@bash scripts/dev-lambda.sh stop

test: ## all tests against the emulator (started and stopped if not running)
	@bash scripts/test.sh

lint: lint-rust lint-sh lint-deny lint-infra lint-deploy ## fmt --check, clippy -D warnings, no module import cycles, the contract crate free of AWS/runtime/HTTP dependencies, ports free of HTTP and SDK types, shellcheck (when installed), cargo-deny, cfn-lint, checkov, hadolint, Kubernetes and KEDA manifests

lint-rust:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	python3 scripts/module-cycles.py --quiet contract/src ingest/src platform/src worker/src
	bash scripts/check-contract-deps.sh
	python3 scripts/check-ports.py ingest/src worker/src

lint-sh:
	@if command -v shellcheck >/dev/null 2>&1; then \
		echo "shellcheck -x $(SHELL_SCRIPTS)"; \
		shellcheck -x $(SHELL_SCRIPTS); \
	else \
		echo "shellcheck not installed: skipping shell lint (apt-get install -y shellcheck)"; \
	fi

fmt: ## format the Rust code
	cargo fmt --all

emulator-up: ## start the AWS emulator (MiniStack; EMULATOR=moto or localstack) on 127.0.0.1:$EMULATOR_PORT
	@bash localstack/start.sh

emulator-down: ## stop the emulator that emulator-up started
	@bash localstack/stop.sh

provision: ## create queue, DLQ and table (in the local emulator unless AWS_ENDPOINT_URL says otherwise)
	@AWS_ENDPOINT_URL='$(AWS_ENDPOINT_URL)' bash localstack/provision.sh

schemathesis: ## property-based API tests (schemathesis) against the local stack: no 5xx, responses match the document
	@bash scripts/schemathesis.sh

fuzz: ## every fuzz target: seeds replayed, then mutated inputs (FUZZ_SECONDS each, 5; FUZZ_ENGINE=libfuzzer: cargo-fuzz, coverage-guided)
	@bash scripts/fuzz.sh

soak: ## spike test on MiniStack: 100,000 writes through ingest onto one queue while 2 worker pollers drain, exactly once, against a direct SendMessage baseline, charted to target/soak/spike.svg (SOAK_WRITES=1000000 for a million; not in make test)
	@bash scripts/soak.sh

soak-deployed: ## the spike through infra/template.yaml deployed into MiniStack (API Gateway, ingest and worker Lambdas, event source mapping): 20,000 writes, exactly once, charted (SOAK_TARGET=deployed make soak)
	@SOAK_TARGET=deployed bash scripts/soak.sh

lint-deny: ## cargo deny check: advisories (offline snapshot, ADVISORY_DB), licences, bans, sources
	@bash scripts/deny.sh

lint-deploy: ## hadolint the Containerfiles; render and validate deploy/k8s offline (kubernetes-validate, KEDA CRD schemas, policy)
	@bash scripts/lint-deploy.sh

image: ## container images of both functions with buildah, from scratch, no base pulled (images/build-local.sh)
	@bash images/build-local.sh

lint-infra: ## cfn-lint and checkov on the SAM template, its LMI variant and infra/ecs.yaml (pinned, in .venv-tools)
	@bash infra/lint.sh

lmi-template: ## regenerate infra/template-lmi.yaml (Lambda Managed Instances) from infra/template.yaml
	@.venv-tools/bin/python infra/lmi_variant.py

bench: ## performance budgets against the emulator, release build (prints figures and ratios)
	@bash scripts/bench.sh

sbom: ## CycloneDX bills of materials for both functions (from cargo metadata) into target/sbom/
	@python3 scripts/sbom.py target/sbom

package: ## build the deployment zips (infra/package.sh)
	@test -f infra/package.sh || { echo "infra/package.sh does not exist yet" >&2; exit 1; }
	@bash infra/package.sh

clean: ## stop local processes, remove build output and .run/
	-@bash scripts/dev.sh stop
	-@bash localstack/stop.sh
	cargo clean
	rm -rf .run

distclean: clean ## clean, and remove the emulator virtualenv too
	rm -rf .venv-emulator
