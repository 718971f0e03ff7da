#!/bin/sh
# CLI behaviour: version, usage errors with exit status 2, a tiny demo run.
set -u
bin=$1
fail=0
check() { # check DESCRIPTION WANT_STATUS CMD...
    desc=$1 want=$2; shift 2
    "$@" >/tmp/ss_cli_out.$$ 2>&1; got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL $desc: exit $got, want $want"; cat /tmp/ss_cli_out.$$; fail=$((fail+1))
    else echo "ok   $desc"; fi
}
check "version" 0 "$bin" version
check "no command" 2 "$bin"
check "unknown command" 2 "$bin" frobnicate
check "bench unknown loss" 2 "$bin" bench nosuchloss
check "bench bad flag" 2 "$bin" bench ntxent --frob 3
check "bench bad number" 2 "$bin" bench ntxent --n abc
check "bench tiny" 0 "$bin" bench ntxent --n 64 --d 16 --reps 2
check "demo tiny" 0 "$bin" demo --n 32 --d 16 --reps 1 --no-torch
rm -f /tmp/ss_cli_out.$$
[ "$fail" -eq 0 ]
