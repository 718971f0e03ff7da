#!/usr/bin/env bash
# dist_coverage.sh - every landed loss has a distributed version (issue #7):
# for each public ss_<name>_forward declared in include/selfsup.h, checks
# that ss_dist_<name>_forward is declared in include/selfsup_comm.h and
# exercised by some tests/mpi/dist_*.c. Lists the missing ones and fails.
# Usage: tests/dist_coverage.sh [repository root]   (ctest: dist_coverage)
set -u
root=${1:-$(dirname "$0")/..}
api=$root/include/selfsup.h comm=$root/include/selfsup_comm.h
tests=("$root"/tests/mpi/dist_*.c)

# Names of the SS_API declarations of *_forward in a header (a declaration
# may wrap after its return type, so the header is read as one line).
declared() {
    tr '\n' ' ' <"$1" |
        grep -oE 'SS_API[[:space:]]+[A-Za-z_0-9]+[[:space:]*]+ss_[a-z0-9_]+_forward[[:space:]]*\(' |
        sed -E 's/.*(ss_[a-z0-9_]+_forward).*/\1/' | sort -u
}

for f in "$api" "$comm" "${tests[0]}"; do
    [ -e "$f" ] || { echo "dist_coverage: missing $f" >&2; exit 2; }
done
losses=$(declared "$api" | sed -E 's/^ss_(.*)_forward$/\1/')
[ -n "$losses" ] || { echo "dist_coverage: no ss_*_forward in $api" >&2; exit 2; }
dist=$(declared "$comm")

n=0 missing=0
for name in $losses; do
    n=$((n + 1))
    want=ss_dist_${name}_forward
    why=
    grep -qx "$want" <<<"$dist" || why="not declared in include/selfsup_comm.h"
    if [ -z "$why" ] && ! grep -qw "$want" "${tests[@]}"; then
        why="not called in any tests/mpi/dist_*.c"
    fi
    if [ -n "$why" ]; then
        echo "dist_coverage: ss_${name}_forward: $want $why"
        missing=$((missing + 1))
    fi
done
if [ "$missing" -gt 0 ]; then
    echo "dist_coverage: $missing of $n losses lack a tested distributed version"
    exit 1
fi
echo "dist_coverage: all $n losses of include/selfsup.h have a tested ss_dist_* version"
