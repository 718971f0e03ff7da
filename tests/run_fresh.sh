#!/bin/sh
# Fresh PyTorch comparison: regenerate <group> fixtures with a random seed
# into a temp dir, then run the group's C tests against them.
# usage: run_fresh.sh PYTHON REF_SCRIPT SELFSUP_TEST GROUP
set -eu
py=$1 ref=$2 bin=$3 group=$4
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
seed=${SS_FRESH_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "fresh $group cases, seed $seed (SS_FRESH_SEED=$seed reproduces)"
"$py" "$ref" --seed "$seed" --out "$dir"
SS_FIXTURE_DIR=$dir "$bin" -o "$group"
