# Sourced by the project's scripts: one cache folder for the Python tools and one shared cargo
# target dir, both outside the checkout so a fresh clone on the same machine reuses them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CONVOY_CACHE=${CONVOY_CACHE:-$HOME/.cache/convoy}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CONVOY_CACHE/target}
VENV=$CONVOY_CACHE/venv
export CONVOY_MOTO_SERVER=$VENV/bin/moto_server

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs the pinned Python tools into $VENV unless the same requirements are already there.
ensure_python_tools() {
  local stamp=$VENV/.requirements.sha256 want
  want=$(sha256sum < "$ROOT"/scripts/requirements.txt | cut -d" " -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return 0; fi
  log "installing pinned Python tools into $VENV"
  python3 -m venv "$VENV"
  "$VENV"/bin/pip install --quiet --disable-pip-version-check -r "$ROOT"/scripts/requirements.txt
  echo "$want" > "$stamp"
}

ensure_rust() {
  command -v cargo >/dev/null || { echo "cargo is not installed (https://rustup.rs)" >&2; exit 1; }
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
}

# Release build tools (cargo-lambda, and zig for cross-linking) in their own venv, so that the
# tests' venv never pays for them; reinstalled only when requirements-build.txt changes. Callers
# put $BUILD_VENV/bin first on PATH: cargo-lambda finds zig only via `python3 -m ziglang`.
BUILD_VENV=$CONVOY_CACHE/venv-build
ensure_build_tools() {
  local stamp=$BUILD_VENV/.requirements.sha256 want
  want=$(sha256sum < "$ROOT"/scripts/requirements-build.txt | cut -d' ' -f1)
  if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    log "installing pinned build tools into $BUILD_VENV"
    python3 -m venv "$BUILD_VENV"
    "$BUILD_VENV"/bin/pip install --quiet --disable-pip-version-check \
      -r "$ROOT"/scripts/requirements-build.txt
    echo "$want" > "$stamp"
  fi
  # Lambda's arm64 (Graviton) target; the zip build cross-compiles for it.
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
    || rustup target add aarch64-unknown-linux-gnu
}

# Headless Chromium and its WebDriver (Debian's packages) for the dashboard's browser tests.
# Idempotent: nothing runs when both are there. The tests fail (never skip) without them.
ensure_browser() {
  if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then return 0; fi
  log "installing chromium and chromium-driver (Debian packages) for the browser tests"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-dejavu-core >/dev/null
}
