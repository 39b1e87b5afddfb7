# The everyday verbs; .ci/run calls the same commands.
.PHONY: run test fmt lint openapi fuzz load ci

run:      ## Serve on SQLite with demo data at http://127.0.0.1:8080
	cargo run

test:     ## Every test; Postgres suites run when a server answers on 127.0.0.1:5432
	cargo test --workspace

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

openapi:  ## Regenerate the committed OpenAPI document
	cargo run -q -p marketd -- openapi > openapi/openapi.json

fuzz:     ## schemathesis against a local marketd, all checks
	scripts/fuzz-api.sh

load:     ## Load benchmark (wrk), SQLite and Postgres
	tests/load/run.sh

ci:
	bash .ci/run
