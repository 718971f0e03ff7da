#!/bin/sh
# Installs the build into a temporary prefix, then builds a consumer program
# against it twice: through pkg-config and through find_package(selfsup).
# usage: install.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n 1)
test -f "$tmp/prefix/include/selfsup.h"
test -x "$tmp/prefix/bin/selfsup"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 -o "$tmp/consumer_pc" "$src/tests/install/consumer.c" $(pkg-config --cflags --libs selfsup)
LD_LIBRARY_PATH="$libdir" "$tmp/consumer_pc"

cmake -S "$src/tests/install" -B "$tmp/cbuild" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cbuild" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/cbuild/consumer"
echo "install ok"
