#!/bin/sh
# `mpirun -np 2 selfsup train`: a tiny data-parallel run on a synthetic IDX
# set exits 0 with one rank printing and writing (one header, one CSV of
# header + one row per epoch, one checkpoint, nothing else in --out) and
# the losses of one process; its resume works; dino runs; a missing dataset
# fails on every rank without hanging.
# usage: train_dist.sh SELFSUP MPIEXEC
set -u
bin=$1 mpiexec=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ss_train_dist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out.txt
fail=0
bad() { echo "FAIL $1"; sed 's/^/     /' "$out"; fail=$((fail + 1)); }
mpi2() { OMP_NUM_THREADS=1 timeout 100 "$mpiexec" --oversubscribe \
         --allow-run-as-root -np 2 "$bin" train --threads 1 --quiet "$@" \
         >"$out" 2>&1; }
count() { grep -c -- "$1" "$out"; }

# 64 random 28x28 images: idx3 header (0x00000803, 64, 28, 28) + pixels
mkdir -p "$tmp/data"
img=$tmp/data/train-images-idx3-ubyte
printf '\000\000\010\003\000\000\000\100\000\000\000\034\000\000\000\034' >"$img"
head -c $((64 * 784)) /dev/urandom >>"$img"
tiny="--data $tmp/data --out $tmp/run --batch 16 --epochs 2 --proj-hidden 32 \
      --proj-out 16 --no-eval"

# shellcheck disable=SC2086
mpi2 $tiny; rc=$?
if [ "$rc" -ne 0 ]; then bad "np 2 run: exit $rc"
else
    [ "$(count 'selfsup train: simclr on 64 images')" -eq 1 ] || bad "header not printed once"
    [ "$(count 'data-parallel over 2 ranks')" -eq 1 ] || bad "no data-parallel line"
    [ "$(count 'trained in')" -eq 1 ] || bad "'trained in' not printed once"
    [ "$(wc -l <"$tmp/run/metrics.csv")" -eq 3 ] || bad "metrics.csv is not header + 2 rows"
    [ -s "$tmp/run/checkpoint.bin" ] || bad "no checkpoint"
    [ "$(ls "$tmp/run" | wc -l)" -eq 2 ] || bad "other files in --out: $(ls "$tmp/run")"
    echo "ok   np 2 run: rank 0 printed and wrote"
fi
# shellcheck disable=SC2086
mpi2 $tiny --resume; rc=$?
if [ "$rc" -ne 0 ] || [ "$(count '(resumed)')" -ne 1 ]; then bad "np 2 resume: exit $rc"
else echo "ok   np 2 resume of a finished run"; fi

# the same run in one process: the same losses (up to float summation order)
# shellcheck disable=SC2086
"$bin" train --threads 1 --quiet $tiny --out "$tmp/one" >"$out" 2>&1 || bad "one-process run"
if ! paste -d, "$tmp/run/metrics.csv" "$tmp/one/metrics.csv" | awk -F, 'NR > 1 {
        d = $3 - $12; if (d < 0) d = -d; if (d > 1e-4 * ($12 < 0 ? -$12 : $12)) bad = 1 }
        END { exit bad }'; then
    bad "np 2 losses differ from one process: $(cut -d, -f3 "$tmp/run/metrics.csv" "$tmp/one/metrics.csv" | tr '\n' ' ')"
else echo "ok   np 2 losses equal one process's"; fi
mpi2 --data "$tmp/data" --out "$tmp/dino" --method dino --batch 8 --epochs 1 \
     --proj-hidden 16 --proj-out 16 --no-eval; rc=$?
if [ "$rc" -ne 0 ]; then bad "dino under mpirun: exit $rc"
else echo "ok   dino under mpirun"; fi
mpi2 --data "$tmp/nowhere" --out "$tmp/none"; rc=$?
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || ! grep -qF "(rank 1)" "$out"; then bad "missing dataset: exit $rc"
else echo "ok   missing dataset: every rank fails"; fi
[ "$fail" -eq 0 ] && echo "all data-parallel train checks passed"
exit "$fail"
