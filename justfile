# Recipes for day-to-day work; CI runs .ci/run.

# The whole system on this machine, embedded NATS and Postgres.
dev *args:
    uv run scheduler dev {{args}}

# The whole test suite against real servers.
test *args:
    uv run pytest {{args}}

# Only the fast tier, in under 20 s: the unit tests that are not `slow` (the whole suite runs those), with fewer
# property examples (Hypothesis profile `unit`), spread test by test over two processes (`--dist load`: 16 s on an
# idle 2-core box against 25 s in one process, once the tier passed 800 tests) and without the plugins only the
# end-to-end tests use. Unit tests live in tests/unit (and test_architecture.py).
test-unit *args:
    uv run pytest -m "unit and not slow" -n 2 --dist load --hypothesis-profile=unit -p no:faker -p no:schemathesis tests/unit tests/test_architecture.py {{args}}

# Lint, format check, types and service boundaries.
lint:
    uv run ruff check .
    uv run ruff format --check .
    uv run mypy
    uv run lint-imports

# Apply formatting and safe fixes.
fmt:
    uv run ruff format .
    uv run ruff check --fix .

# A bearer token for local clients (secret from SUPABASE_JWT_SECRET or .scheduler/jwt_secret).
token account:
    uv run scheduler token --account {{account}}

# Everything in containers (needs a Docker engine).
compose-up:
    docker compose up --build

# The Kubernetes manifests as applied (needs kubectl); OVERLAY is base or overlays/small.
render OVERLAY="overlays/small":
    kubectl kustomize deploy/k8s/{{OVERLAY}}

# Check the manifests and the compose file offline against their schemas.
check-manifests:
    uv run pytest -q tests/unit/test_deployment_manifests.py

# Operators' view of a running system (NATS_URL, DATABASE_URL).
status:
    uv run scheduler status

# Benchmarks (docs/performance.md): `just bench` runs every workload (~15 min); `just bench precision --jobs 100`.
bench *args="all":
    uv run python -m bench {{args}}
