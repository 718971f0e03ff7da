#!/bin/sh
# Installs the build into a temporary prefix and imports the installed
# selfsup package from there, without SELFSUP_LIB: the package must find the
# installed library through the directory `make install` recorded.
# usage: install_check.sh PYTHON BUILD_DIR PYTHON_INSTALL_DIR
set -eu
py=$1 build=$2 pydir=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cd "$tmp"
env -u SELFSUP_LIB PYTHONPATH="$tmp/prefix/$pydir" "$py" -c "
import numpy as np, selfsup
name = selfsup._lib.lib._name
assert name.startswith('$tmp/prefix/'), name
assert selfsup.__file__.startswith('$tmp/prefix/'), selfsup.__file__
print('python install ok:', name, selfsup.ntxent(np.ones((2, 3, 4), np.float32)))
"
