#!/bin/sh
# CLI behaviour: version, usage errors (exit 2) naming the flag and value,
# failures (exit 1), a tiny bench of every loss, the demo; when Debian's
# python3 can import torch, a tiny comparison whose loss values must agree.
set -u
bin=$1
[ -x "$bin" ] || { echo "FAIL: no executable '$bin'"; exit 1; }
out=${TMPDIR:-/tmp}/ss_cli_out.$$
trap 'rm -f "$out"' EXIT
fail=0
bad() { echo "FAIL $1"; sed 's/^/     /' "$out"; fail=$((fail + 1)); }
# check DESCRIPTION WANT_STATUS WANT_TEXT CMD...: exit status and (if
# WANT_TEXT is not empty) a fixed string somewhere in stdout + stderr.
check() {
    desc=$1 want=$2 text=$3; shift 3
    "$@" >"$out" 2>&1; got=$?
    if [ "$got" -ne "$want" ]; then bad "$desc: exit $got, want $want"
    elif [ -n "$text" ] && ! grep -qF -- "$text" "$out"; then bad "$desc: no '$text'"
    else echo "ok   $desc"; fi
}
# refute DESCRIPTION TEXT: the last command's output must not contain TEXT.
refute() {
    if grep -qF -- "$2" "$out"; then bad "$1: has '$2'"; else echo "ok   $1"; fi
}

check "version" 0 "selfsup" "$bin" version
check "no command" 2 "usage" "$bin"
check "unknown command" 2 "frobnicate" "$bin" frobnicate

# --help lists every flag with its default
check "bench --help" 0 "losses: ntxent" "$bin" bench --help
for flag in --n --d --k --views --threads --reps --warmup --seed --torch --no-torch --peak; do
    grep -qF -- "  $flag" "$out" || bad "bench --help lacks $flag"
done
check "demo --help" 0 "--markdown" "$bin" demo --help

# usage errors: exit 2, the message names the flag and the value
check "bench no loss" 2 "which loss" "$bin" bench
check "bench unknown loss" 2 "'nosuchloss'" "$bin" bench nosuchloss
check "bench unknown flag" 2 "'--frob'" "$bin" bench ntxent --frob 3
check "bench bad number" 2 "--n: expected an integer, got 'abc'" "$bin" bench ntxent --n abc
check "bench trailing junk" 2 "'12x'" "$bin" bench ntxent --d=12x
check "bench n = 0" 2 "--n: must be in" "$bin" bench ntxent --n 0
check "bench threads = 0" 2 "--threads" "$bin" bench ntxent --threads 0
check "bench reps = 0" 2 "--reps" "$bin" bench ntxent --reps 0
check "bench warmup < 0" 2 "--warmup" "$bin" bench ntxent --warmup -1
check "bench missing value" 2 "--k needs a value" "$bin" bench moco --k
check "bench peak nan" 2 "--peak" "$bin" bench ntxent --peak nan
check "bench switch with value" 2 "--no-torch" "$bin" bench ntxent --no-torch=1
check "bench two losses" 2 "'clip'" "$bin" bench ntxent clip
check "bench clip views" 2 "--views: clip takes exactly 2 views, got 3" "$bin" bench clip --views 3
check "bench ntxent 1 view" 2 "--views: ntxent takes 2 to 64" "$bin" bench ntxent --views 1
check "demo unknown flag" 2 "'--views'" "$bin" demo --views 3
# failures: exit 1 with a message
check "bench too large" 1 "more than the" "$bin" bench ntxent --n 1073741824 --d 1048576 --no-torch
check "bench library error" 1 "ss_dcl_forward" "$bin" bench dcl --n 1 --d 4 --no-torch
SELFSUP_PYTHON=/nonexistent/python3 \
    check "bench --torch without python" 1 "--torch" "$bin" bench ntxent --n 8 --d 4 --torch

# a tiny bench of every loss
for loss in ntxent supcon moco clip siglip dcl dclw; do
    check "bench $loss tiny" 0 "fwd+bwd (median)" \
        "$bin" bench $loss --n 24 --d 8 --k 40 --reps 2 --no-torch
done
# ... and of every other loss, at sizes each accepts (ibot: --d tokens per
# image; mae: --d image side, patches gcd(d, 16); wmse: N >= 2 D)
for loss in negcos barlow vicreg tico wmse hypersphere koleo mmcr empssl dino ibot \
        swav msn pmsn mlm fused_ce recon mae; do
    check "bench $loss tiny" 0 "fwd+bwd (median)" \
        "$bin" bench $loss --n 24 --d 8 --k 40 --views 3 --reps 2 --no-torch
done
check "bench mae default patch" 0 "N=2 D=32" "$bin" bench mae --n 2 --d 32 --reps 1 --no-torch
check "bench swav 2 views" 0 "V=2" "$bin" bench swav --views 2 --n 16 --k 24 --reps 1 --no-torch
check "bench dino 1 view" 2 "--views: dino takes 2 to 64" "$bin" bench dino --views 1
check "bench no FLOP model" 0 "FLOP model: none" "$bin" bench recon --n 8 --d 8 --reps 1 --no-torch
check "bench barlow FLOP model" 0 "Gram form 3 N^2 D" "$bin" bench barlow --n 8 --d 16 --reps 1 --no-torch
check "bench wmse too few rows" 1 "ss_wmse_forward" "$bin" bench wmse --n 8 --d 8 --reps 1 --no-torch
check "bench --help per-loss sizes" 0 "fused_ce    N=1024 D=768 K=32768" "$bin" bench --help
check "bench supcon 1 view" 0 "V=1" "$bin" bench supcon --views 1 --n 16 --d 8 --reps 1 --no-torch
check "bench ntxent 3 views" 0 "V=3" "$bin" bench ntxent --views 3 --n 16 --d 8 --reps 1 --no-torch
SELFSUP_PYTHON=/nonexistent/python3 \
    check "bench auto torch, no python" 0 "torch: not run" "$bin" bench clip --n 8 --d 4 --reps 1
check "demo tiny" 0 "dclw" "$bin" demo --n 32 --d 16 --k 64 --reps 1 --no-torch
for loss in negcos barlow vicreg tico wmse hypersphere koleo mmcr empssl dino ibot \
        swav msn pmsn mlm fused_ce recon mae; do
    grep -q "^$loss " "$out" || bad "demo tiny lacks $loss"
done
SELFSUP_PYTHON=/nonexistent/python3 \
    check "demo auto torch, no python" 0 "cannot run /nonexistent/python3" \
        "$bin" demo --n 16 --d 8 --k 32 --reps 1
check "demo markdown" 0 "| loss | shape |" "$bin" demo --n 16 --d 8 --k 32 --reps 1 --no-torch --markdown

# beside PyTorch: the loss values must agree (same inputs, same formula)
if /usr/bin/python3 -c "import torch, numpy" 2>/dev/null; then
    check "bench ntxent --torch" 0 "torch/selfsup" "$bin" bench ntxent --n 48 --d 16 --reps 1 --torch
    refute "bench ntxent --torch agrees" "MISMATCH"
    check "bench ntxent 3 views --torch" 0 "torch/selfsup" \
        "$bin" bench ntxent --views 3 --n 16 --d 8 --reps 1 --torch
    refute "bench ntxent 3 views --torch agrees" "MISMATCH"
    check "bench supcon 3 views --torch" 0 "torch/selfsup" \
        "$bin" bench supcon --views 3 --n 16 --d 8 --reps 1 --torch
    refute "bench supcon 3 views --torch agrees" "MISMATCH"
    check "bench dcl 3 views --torch" 0 "torch/selfsup" \
        "$bin" bench dcl --views 3 --n 16 --d 8 --reps 1 --torch
    refute "bench dcl 3 views --torch agrees" "MISMATCH"
    for loss in barlow swav; do
        check "bench $loss --torch" 0 "torch/selfsup" \
            "$bin" bench $loss --n 32 --d 16 --k 48 --views 3 --reps 1 --torch
        refute "bench $loss --torch agrees" "MISMATCH"
    done
    check "demo tiny --torch" 0 "siglip" "$bin" demo --n 40 --d 16 --k 96 --reps 1 --torch
    refute "demo tiny --torch agrees" "MISMATCH"
else
    echo "skip --torch checks: /usr/bin/python3 cannot import torch"
fi
[ "$fail" -eq 0 ]
