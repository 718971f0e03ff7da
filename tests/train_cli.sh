#!/bin/sh
# `selfsup train` / `selfsup eval` from the command line: --help, usage
# errors (exit 2), a missing dataset, and (when Fashion-MNIST is installed)
# a tiny end-to-end run, a resume and an eval of its checkpoint.
set -u
bin=$1
[ -x "$bin" ] || { echo "FAIL: no executable '$bin'"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ss_train_cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out.txt
fail=0
bad() { echo "FAIL $1"; sed 's/^/     /' "$out"; fail=$((fail + 1)); }
check() {
    desc=$1 want=$2 text=$3; shift 3
    "$@" >"$out" 2>&1; got=$?
    if [ "$got" -ne "$want" ]; then bad "$desc: exit $got, want $want"
    elif [ -n "$text" ] && ! grep -qF -- "$text" "$out"; then bad "$desc: no '$text'"
    else echo "ok   $desc"; fi
}

check "train --help" 0 "--epochs E" "$bin" train --help
for flag in --method --optimizer --data --out --epochs --batch --lr --threads \
            --seed --resume --subset; do
    grep -qF -- "$flag" "$out" || bad "train --help lacks $flag"
done
grep -qF "(default 6)" "$out" || bad "train --help shows no default epochs"
check "eval --help" 0 "CHECKPOINT" "$bin" eval --help
check "unknown flag" 2 "--frob" "$bin" train --frob
check "unknown method" 2 "unknown method 'nope'" "$bin" train --method nope
check "bad optimizer" 2 "--optimizer" "$bin" train --optimizer adam
check "bad epochs" 2 "--epochs" "$bin" train --epochs 0
check "non-numeric lr" 2 "--lr" "$bin" train --lr fast
check "missing value" 2 "--batch" "$bin" train --batch
check "eval without checkpoint" 2 "CHECKPOINT" "$bin" eval
check "missing dataset" 1 "apt-get install dataset-fashion-mnist" \
    "$bin" train --data "$tmp/nowhere" --out "$tmp/r0" --quiet
check "eval of a missing checkpoint" 1 "$tmp/none.bin" "$bin" eval "$tmp/none.bin"
printf 'garbage' >"$tmp/bad.bin"
check "eval of a corrupt checkpoint" 1 "byte offset" "$bin" eval "$tmp/bad.bin"

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    check "tiny end-to-end run" 0 "random init" \
        "$bin" train --subset 256 --batch 64 --epochs 1 --eval-train 500 \
        --eval-test 200 --threads 2 --quiet --out "$tmp/run"
    grep -qF "raw pixels" "$out" || bad "no raw-pixel row"
    [ -s "$tmp/run/checkpoint.bin" ] || bad "no checkpoint"
    [ -s "$tmp/run/metrics.csv" ] || bad "no metrics.csv"
    check "resume of a finished run" 0 "(resumed)" \
        "$bin" train --resume --no-eval --quiet --out "$tmp/run"
    check "eval of the checkpoint" 0 "pretrained" \
        "$bin" eval "$tmp/run/checkpoint.bin" --eval-train 500 --eval-test 200
else
    echo "skip end-to-end run: Fashion-MNIST is not installed"
fi
[ "$fail" -eq 0 ] && echo "all train CLI checks passed"
exit "$fail"
