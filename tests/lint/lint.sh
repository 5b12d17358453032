#!/usr/bin/env bash
# The code's own checks, run by `make test`:
#   lint.sh format <source dir>            clang-format --dry-run over every C++ file
#                                          (.clang-format): any change is a failure
#   lint.sh tidy <source dir> <build dir>  clang-tidy (.clang-tidy: a small set of
#                                          bug-finding checks, warnings as errors)
#                                          over every source of runtime/ and actors/
# Exit 0: clean; 1: findings (printed); 2: the tool is missing.
set -uo pipefail
what="${1:?format|tidy}"
src="${2:?source dir}"
cd "$src"

sources() {
  if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    git ls-files "$@"
  else
    find . -path ./build -prune -o -path ./build-release -prune -o -path ./.tools -prune -o \
      \( -name '*.cpp' -o -name '*.hpp' \) -print
  fi
}

case "$what" in
  format)
    command -v clang-format > /dev/null || { echo "lint: clang-format is not installed (make setup)"; exit 2; }
    mapfile -t files < <(sources '*.cpp' '*.hpp')
    [ "${#files[@]}" -gt 0 ] || { echo "lint: no C++ files found under $src"; exit 1; }
    if ! clang-format --dry-run --Werror "${files[@]}"; then
      echo "lint: files above are not formatted; run: clang-format -i <file> (.clang-format)"
      exit 1
    fi
    echo "lint: ${#files[@]} files formatted as .clang-format says"
    ;;
  tidy)
    build="${3:?build dir}"
    command -v run-clang-tidy > /dev/null || { echo "lint: clang-tidy is not installed (make setup)"; exit 2; }
    [ -f "$build/compile_commands.json" ] || { echo "lint: no $build/compile_commands.json"; exit 1; }
    n=$(grep -cE "\"file\": \"$src/(runtime|actors)/.*\.cpp\"" "$build/compile_commands.json")
    [ "$n" -gt 0 ] || { echo "lint: no runtime/ or actors/ source in $build/compile_commands.json"; exit 1; }
    out=$(run-clang-tidy -j2 -p "$build" -quiet "$src/(runtime|actors)/.*\.cpp$" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] || grep -qE "(warning|error):" <<< "$out"; then
      grep -E "(warning|error):" -A3 <<< "$out" | head -200
      echo "lint: clang-tidy found the above in $n sources (.clang-tidy)"
      exit 1
    fi
    echo "lint: clang-tidy clean over $n sources of runtime/ and actors/"
    ;;
  *) echo "lint: unknown check $what"; exit 2 ;;
esac
