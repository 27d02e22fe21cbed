# Sourced by scripts/test: runs an S3-compatible server (moto, pinned) on a
# free loopback port for the tests, and points the S3 tests at it.
#
#   start_s3_server   install moto into target/ if needed, start it, create
#                     the test bucket, export CAIRN_TEST_S3_URL and AWS_*
#   stop_s3_server    stop the server this script started (by its pid)

MOTO_VERSION="5.2.5"
MOTO_DIR="target/moto-${MOTO_VERSION}"
S3_SERVER_PID=""

s3_python() {
  if [ -x "$MOTO_DIR/venv/bin/python" ]; then
    "$MOTO_DIR/venv/bin/python" "$@"
  else
    PYTHONPATH="$MOTO_DIR/pkgs${PYTHONPATH:+:$PYTHONPATH}" python3 "$@"
  fi
}

# Whether the pinned moto is what s3_python imports (a moto installed in
# the system's Python, of whatever version, does not count).
moto_ok() {
  s3_python -c "import sys, moto.server; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null
}

install_moto() {
  if moto_ok; then
    return 0
  fi
  echo "installing moto[server]==$MOTO_VERSION into $MOTO_DIR" >&2
  mkdir -p "$MOTO_DIR"
  if python3 -m venv "$MOTO_DIR/venv" 2>/dev/null; then
    "$MOTO_DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  else
    rm -rf "$MOTO_DIR/venv"
    python3 -m pip install --quiet --disable-pip-version-check --target "$MOTO_DIR/pkgs" "moto[server]==$MOTO_VERSION"
  fi
  if ! moto_ok; then
    echo "moto $MOTO_VERSION is not importable after installing it" >&2
    return 1
  fi
}

start_s3_server() {
  install_moto || return 1
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # Started directly (not through a shell function, which would run in a
  # subshell) so that $! is the server's own pid. scripts/moto-server.py
  # runs moto.server handling one request at a time, which makes its
  # conditional puts atomic as S3's are (see that file).
  # moto spools large objects to temp files: keep them in target/, not /tmp.
  mkdir -p target/moto-tmp
  if [ -x "$MOTO_DIR/venv/bin/python" ]; then
    TMPDIR="$PWD/target/moto-tmp" "$MOTO_DIR/venv/bin/python" scripts/moto-server.py -H 127.0.0.1 -p "$port" > target/moto-server.log 2>&1 &
  else
    TMPDIR="$PWD/target/moto-tmp" PYTHONPATH="$MOTO_DIR/pkgs${PYTHONPATH:+:$PYTHONPATH}" python3 scripts/moto-server.py -H 127.0.0.1 -p "$port" \
      > target/moto-server.log 2>&1 &
  fi
  S3_SERVER_PID=$!
  local endpoint="http://127.0.0.1:$port"
  # Wait for it to answer, then create the bucket the tests share.
  local i
  for i in $(seq 1 100); do
    if python3 - "$endpoint" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/cairn-test", method="PUT"), timeout=2)
PY
    then
      break
    fi
    if ! kill -0 "$S3_SERVER_PID" 2>/dev/null; then
      echo "the S3 test server exited; its log:" >&2
      cat target/moto-server.log >&2
      return 1
    fi
    sleep 0.2
  done
  export CAIRN_TEST_S3_URL="s3://cairn-test"
  export AWS_ENDPOINT="$endpoint" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=cairn-test AWS_SECRET_ACCESS_KEY=cairn-test
  unset AWS_ENDPOINT_URL AWS_SESSION_TOKEN AWS_PROFILE
  echo "S3 test server (moto $MOTO_VERSION) on $endpoint, pid $S3_SERVER_PID" >&2
}

stop_s3_server() {
  if [ -n "$S3_SERVER_PID" ]; then
    kill "$S3_SERVER_PID" 2>/dev/null || true
    wait "$S3_SERVER_PID" 2>/dev/null || true
    S3_SERVER_PID=""
  fi
}
