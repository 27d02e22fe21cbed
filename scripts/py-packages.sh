# Sourced by scripts/test: installs the Python packages the interop tests
# use (pinned, with pip, into a virtual environment under target/) and
# points the tests at that interpreter.
#
#   install_py_packages   install if needed; export CAIRN_TEST_PYTHON

SAFETENSORS_VERSION="0.5.3"
NUMPY_VERSION="2.2.6"
PY_DIR="target/py-safetensors-${SAFETENSORS_VERSION}-numpy-${NUMPY_VERSION}"

py_packages_ok() {
  "$PY_DIR/venv/bin/python" -c "
import sys, numpy, safetensors
sys.exit(safetensors.__version__ != '$SAFETENSORS_VERSION' or numpy.__version__ != '$NUMPY_VERSION')" 2>/dev/null
}

install_py_packages() {
  if ! py_packages_ok; then
    echo "installing safetensors==$SAFETENSORS_VERSION numpy==$NUMPY_VERSION into $PY_DIR" >&2
    rm -rf "$PY_DIR"
    python3 -m venv "$PY_DIR/venv" || return 1
    "$PY_DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "safetensors==$SAFETENSORS_VERSION" "numpy==$NUMPY_VERSION" || return 1
    py_packages_ok || return 1
  fi
  CAIRN_TEST_PYTHON="$PWD/$PY_DIR/venv/bin/python"
  export CAIRN_TEST_PYTHON
}
