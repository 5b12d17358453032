#!/usr/bin/env bash
# The OpenID Connect provider of the identity tests: Ory Hydra v2.3.0 (someone
# else's provider, built from the Go module proxy; tools/oidc-provider/go.mod).
#   scripts/oidc-provider.sh build    builds .tools/bin/hydra (cached; prints its path)
# The tests (tests/e2e/oidc_e2e_test.cpp) run, stop and restart it themselves.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/.tools/bin/hydra"
stamp="$here/.tools/bin/hydra.sum"

go_cmd() {
  if [ -x "$here/.tools/go/bin/go" ]; then echo "$here/.tools/go/bin/go"; else echo go; fi
}

case "${1:-}" in
  build)
    want="$(cat "$here/tools/oidc-provider/go.mod" "$here/tools/oidc-provider/go.sum" | sha256sum | cut -c1-16)"
    if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
      echo "$bin"
      exit 0
    fi
    echo "oidc-provider.sh: building Ory Hydra v2.3.0 into .tools/bin (a few minutes the first time)" >&2
    mkdir -p "$here/.tools/bin"
    (cd "$here/tools/oidc-provider" \
      && CGO_ENABLED=1 GOFLAGS="-mod=mod -buildvcs=false" "$(go_cmd)" build -tags sqlite -o "$bin" github.com/ory/hydra/v2) >&2 \
      || { echo "oidc-provider.sh: cannot build Hydra (is Go >= 1.24 installed? run scripts/setup.sh)" >&2; exit 1; }
    echo "$want" > "$stamp"
    echo "$bin"
    ;;
  *)
    echo "usage: $0 build" >&2
    exit 2
    ;;
esac
