#!/usr/bin/env bash
# Fails if a service is wired into the runtime: runtime/ and tools/ must not
# name any service of actors/ (a service is a plug-in, see docs/services.md).
# Checked for every service folder NAME of actors/:
#   - no #include of actors/ at all;
#   - no string literal "NAME" or "NAME@...", no NAME:: namespace;
#   - for names that are not everyday words, not even the bare word.
# scripts/service-names.allow lists the few lines that may (path, a pattern
# the line must match, and why).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
allow="scripts/service-names.allow"
common_words=" user auth "
status=0

allowed() {  # file line-text
  local file="$1" text="$2" path pattern
  while IFS=$'\t' read -r path pattern _; do
    [[ -z "$path" || "$path" == \#* ]] && continue
    if [[ "$file" == "$path" ]] && grep -qE -- "$pattern" <<<"$text"; then
      return 0
    fi
  done <"$allow"
  return 1
}

report() {  # a reason, grep output lines "file:line:text"
  local why="$1" line file rest text
  while IFS= read -r line; do
    [[ -z "$line" ]] && continue
    file="${line%%:*}"; rest="${line#*:}"; text="${rest#*:}"
    if ! allowed "$file" "$text"; then
      echo "service name in the runtime ($why): $line"
      status=1
    fi
  done <<<"$2"
}

report "includes a service" "$(grep -rnE '#include "actors/' runtime tools || true)"
for dir in actors/*/; do
  [[ -f "$dir/CMakeLists.txt" ]] || continue
  name="$(basename "$dir")"
  report "names $name" "$(grep -rnE "\"$name(@[^\"]*)?\"|\\b$name::" runtime tools || true)"
  if [[ "$common_words" != *" $name "* ]]; then
    report "names $name" "$(grep -rnwE "$name" runtime tools || true)"
  fi
done
if [[ $status -eq 0 ]]; then
  echo "no service is named in runtime/ or tools/ (outside scripts/service-names.allow)"
fi
exit $status
