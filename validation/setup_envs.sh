#!/usr/bin/env bash
# Create the environments `hawkeye-onnx validate` runs the real frameworks in, beside the project:
#   .venv-crypten  CrypTen 0.4.1 on torch 2.13.0 (CPU)
#   .venv-spu      SecretFlow SPU 0.9.5 (pins jax 0.4.34 and numpy 1.26, which clash with the profiler's env)
#
#   bash validation/setup_envs.sh            # both
#   bash validation/setup_envs.sh crypten    # one of them (crypten | spu)
#
# Idempotent: an environment whose framework already imports is left alone (FORCE=1 rebuilds it).
# VENV_DIR (default: the project root) chooses where they go; PYTHON (default python3, 3.11) makes them.
# `hawkeye-onnx validate` finds them there, or through $HAWKEYE_CRYPTEN_PYTHON / $HAWKEYE_SPU_PYTHON.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$ROOT}"
PYTHON="${PYTHON:-python3}"
PIP_FLAGS=(-q --disable-pip-version-check)

ready() {  # ready VENV CHECK: the venv's python runs CHECK
  [[ -x "$1/bin/python" ]] && "$1/bin/python" -c "$2" >/dev/null 2>&1
}

fresh() {  # fresh VENV: an empty venv
  rm -rf "$1"
  "$PYTHON" -m venv "$1"
}

crypten_env() {
  local v="$VENV_DIR/.venv-crypten"
  # `import crypten` needs a stand-in for a torch module 2.13 removed (hawkeye_onnx/harness/crypten_measure.py)
  local check='import sys, types; m = types.ModuleType("r"); m.registry = None
sys.modules["torch.onnx._internal.registration"] = m; import crypten, onnx'
  if [[ -z "${FORCE:-}" ]] && ready "$v" "$check"; then echo "crypten: $v ready"; return; fi
  echo "crypten: creating $v"
  fresh "$v"
  "$v/bin/pip" install "${PIP_FLAGS[@]}" torch==2.13.0
  # crypten 0.4.1 declares `sklearn` (a package PyPI refuses to build) and torchvision/pandas/tensorboard,
  # none of which from_onnx or the MPC runtime imports: install it without them, then what it does import.
  # (pip then lists those declared-but-unused packages as conflicts: expected, filtered out; `ready` below
  # is the real check)
  "$v/bin/pip" install "${PIP_FLAGS[@]}" omegaconf==2.4.0 PyYAML==6.0.4 onnx==1.23.2 numpy==2.4.6 scipy==1.17.1
  "$v/bin/pip" install "${PIP_FLAGS[@]}" --no-deps crypten==0.4.1 2>&1 \
    | grep -v -E "dependency resolver does not currently|crypten 0.4.1 requires" || true
  ready "$v" "$check" || { echo "crypten: $v does not import crypten" >&2; exit 1; }
}

spu_env() {
  local v="$VENV_DIR/.venv-spu"
  local check='import spu, jax, onnx'
  if [[ -z "${FORCE:-}" ]] && ready "$v" "$check"; then echo "spu: $v ready"; return; fi
  echo "spu: creating $v"
  fresh "$v"
  # spu brings jax/jaxlib 0.4.34 and numpy 1.26; onnx 1.16.2 (numpy 1.26 wheels) is the version the harness was checked with
  "$v/bin/pip" install "${PIP_FLAGS[@]}" spu==0.9.5 onnx==1.16.2
  ready "$v" "$check" || { echo "spu: $v does not import spu" >&2; exit 1; }
}

case "${1:-all}" in
  crypten) crypten_env ;;
  spu|semi2k) spu_env ;;
  all) crypten_env; spu_env ;;
  *) echo "usage: $0 [crypten|spu|all]" >&2; exit 2 ;;
esac
