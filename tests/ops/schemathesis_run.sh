#!/usr/bin/env bash
# Property-based test of a running node against its OpenAPI description.
#
#   tests/ops/schemathesis_run.sh SPEC BASE_URL USER_TOKEN ADMIN_TOKEN
#   e.g. tests/ops/schemathesis_run.sh docs/openapi.yaml http://127.0.0.1:8080 "$USER_TOK" "$ADMIN_TOK"
#
# SPEC: docs/openapi.yaml. USER_TOKEN: a session token of an ordinary user (not an
# admin). ADMIN_TOKEN: a session token of an admin. Both from POST /v1/sessions.
#
# Fails (exit 1) on any 5xx (not_a_server_error: 503 and 504 included, a healthy
# node gives none) and on any answer the spec does not describe: an undocumented
# status (status_code_conformance), content type (content_type_conformance) or
# body (response_schema_conformance). Exit 2: bad usage or Schemathesis missing.
#
# Schemathesis 4.x (tests/ops/requirements.txt pins it): found as $SCHEMATHESIS,
# else .tools/venv/bin/st of this repository, else `st` on PATH.
#   python3 -m venv .tools/venv && .tools/venv/bin/pip install -r tests/ops/requirements.txt
#
# Fixed seed, no example database, no cache: a run is reproducible for a given
# node state. 20-40 s against a fresh single node on 2 busy cores; tune with
# ST_MAX_EXAMPLES (default 20 per operation and phase) and ST_SEED. ST_REPORT_DIR=DIR
# keeps a JUnit report and a HAR file (every request and answer) per pass.
#
# What it writes on the node: users and admins with generated emails (and
# "ada@example.com" of the spec's example), their profiles, watches,
# subscriptions and invoices, export and erase jobs. Failed logins with generated
# credentials count against the login limits of 127.0.0.1 (20 per address in
# 5 min by default): logins from that address may get 429 for a few minutes
# afterwards; a test node may be started with --gateway.login-failures-per-address=0.
#
# Tokens and destructive operations. Everything runs with the admin's token
# (admins may call every route for any user id), except:
#   - DELETE /v1/sessions revokes the caller's own session: run last, with the
#     USER token, so USER_TOKEN is spent by a run (log in again for the next) and
#     ADMIN_TOKEN stays valid.
#   - DELETE /v1/users/{id} erases a user and kills that user's tokens: it runs
#     after everything else, in a pass of its own with POST /v1/users, so that it
#     erases users that pass registered (ids Schemathesis learns from the 201s)
#     or random ids (202 for nobody, 404 once tombstoned). The admin's and the
#     user's ids appear in no answer of that pass, so their tokens survive it.
#   - One pass with the USER token over the routes that take a token, to check
#     the 401/403 answers the spec declares for somebody else's resources.
# The stateful phase (chains along the spec's links: a registered user's id to
# its profile, watches, subscription, invoices, export; a job id to its job)
# runs in passes 1 and 3 only, where no operation can revoke the two tokens.
#
# Mode "all": schema-valid and schema-violating requests, both judged by the
# four checks above (a 400 for a bad request is a documented answer). The checks
# negative_data_rejection / positive_data_acceptance are left out on purpose:
# the server takes a numeric string for a number, counts bytes where a schema
# counts characters, and starts erase/export jobs for user ids of any form.
# Redirects are not followed (GET /ui answers 301, as documented).
set -uo pipefail

usage() {
  echo "usage: $0 SPEC BASE_URL USER_TOKEN ADMIN_TOKEN" >&2
  exit 2
}
[ $# -eq 4 ] || usage
spec=$1 base_url=${2%/} user_token=$3 admin_token=$4
[ -r "$spec" ] || { echo "$0: cannot read $spec" >&2; exit 2; }
spec=$(realpath "$spec")
[ -n "$user_token" ] && [ -n "$admin_token" ] || usage

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
st=${SCHEMATHESIS:-}
if [ -z "$st" ]; then
  if [ -x "$repo/.tools/venv/bin/st" ]; then
    st=$repo/.tools/venv/bin/st
  elif command -v st >/dev/null 2>&1; then
    st=$(command -v st)
  else
    echo "$0: Schemathesis not found: pip install -r tests/ops/requirements.txt (or set SCHEMATHESIS)" >&2
    exit 2
  fi
fi

seed=${ST_SEED:-20261201}
max_examples=${ST_MAX_EXAMPLES:-20}
# One worker: with more, Schemathesis 4.32.5 sometimes dies inside Hypothesis
# ("AST constructor recursion depth mismatch", a thread race) instead of testing.
workers=${ST_WORKERS:-1}
[ -z "${ST_REPORT_DIR:-}" ] || ST_REPORT_DIR=$(realpath -m "$ST_REPORT_DIR")

# The spec itself first: a broken spec would make every later verdict meaningless.
validator=$(dirname "$st")/openapi-spec-validator
if [ -x "$validator" ]; then
  "$validator" "$spec" || { echo "$0: $spec is not a valid OpenAPI document" >&2; exit 1; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# No persistent state between runs: no example database (it would replay earlier
# failures first), no cache.
cat >"$work/schemathesis.toml" <<EOF
[cache]
enabled = false

[generation]
database = "none"
EOF

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

failed=0
npass=0
# pass NAME TOKEN MAX_EXAMPLES PHASES [filters...]
pass() {
  local name=$1 token=$2 n=$3 phases=$4
  shift 4
  npass=$((npass + 1))
  local report=()
  if [ -n "${ST_REPORT_DIR:-}" ]; then
    mkdir -p "$ST_REPORT_DIR"
    report=(--report junit,har --report-dir "$ST_REPORT_DIR"
            --report-junit-path "$ST_REPORT_DIR/pass$npass.junit.xml"
            --report-har-path "$ST_REPORT_DIR/pass$npass.har")
  fi
  echo "=== pass $npass: $name"
  # Run from the temp dir: Schemathesis writes nothing into the caller's directory.
  (cd "$work" && "$st" --config-file "$work/schemathesis.toml" run "$spec" \
     --url "$base_url" \
     --header "Authorization: Bearer $token" \
     --checks "$checks" \
     --phases "$phases" \
     --mode all \
     --max-examples "$n" \
     --seed "$seed" \
     --workers "$workers" \
     --generation-with-security-parameters false \
     --request-timeout 30 \
     --max-redirects 0 \
     --suppress-health-check too_slow,filter_too_much \
     --output-sanitize true \
     --no-color \
     "${report[@]}" \
     "$@")
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "=== pass $npass: $name: FAILED (exit $rc)"
    failed=1
  fi
}

# 1. Admin token, every operation but the two destructive ones.
pass "admin: all but DELETE /v1/sessions and DELETE /v1/users/{id}" "$admin_token" "$max_examples" \
  examples,coverage,fuzzing,stateful \
  --exclude-operation-id-regex '^(logout|eraseUser)$'

# 2. User token, the routes that take a token, mostly on other users' ids: 401/403.
pass "user: token-checked routes" "$user_token" "$(( (max_examples + 1) / 2 ))" \
  examples,coverage,fuzzing \
  --include-operation-id-regex '^(getProfile|updateProfile|exportUser|recordWatch|subscribe|issueInvoice|listInvoices|listJobs|getJob|getCluster|createAdmin)$'

# 3. Admin token: erase (of users this pass registers, or of random ids).
pass "admin: POST /v1/users then DELETE /v1/users/{id}" "$admin_token" "$(( (max_examples + 1) / 2 ))" \
  examples,coverage,fuzzing,stateful \
  --include-operation-id-regex '^(registerUser|eraseUser)$'

# 4. Last: the user's token logs itself out (204, then 401).
pass "user: DELETE /v1/sessions" "$user_token" 3 examples,coverage,fuzzing \
  --include-operation-id logout

if [ $failed -ne 0 ]; then
  echo "schemathesis_run: FAILED (see the passes above)"
  exit 1
fi
echo "schemathesis_run: all passes OK"
