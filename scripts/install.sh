#!/usr/bin/env bash
# Install everything bidsapp needs: Debian packages, then a virtual environment `.venv`.
#
# The Dockerfile and .ci/run both call this one script, so a green CI run proves the
# container's install steps too.  Idempotent: rerunning updates the existing `.venv`.
#
# Environment:
#   BIDSAPP_VENV      where to create the venv (default: <repo>/.venv)
#   BIDSAPP_NO_APT=1  skip the Debian packages (e.g. as non-root on a workstation)
#   PYTHON            the interpreter to build the venv from (default: python3)
#   BIDSAPP_EDITABLE=0  install the package itself non-editable (the container image)
#   BIDSAPP_WITH_TRAINING=0  skip the training extras (FluidSynth, music21)
#   BIDSAPP_WITH_BROWSER=0|1  Chromium for the report tests (default: 1 for an editable
#                     install, as in CI; 0 for the container image, which runs no tests)
#   BIDSAPP_TORCH     the torch requirement (default: torch==2.13.0, which on PyPI is the CUDA
#                     build for Linux; torch==2.13.0+cpu is the CPU-only build, found on
#                     https://download.pytorch.org/whl/cpu or a local wheel folder)
#   BIDSAPP_DEPS_ONLY=1  install the validator, torch and the package's dependencies, not the
#                     package or the weights (the container's cached dependency layer)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BIDSAPP_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"

# libsndfile1: soundfile's runtime for wav/flac/ogg/mp3; nodejs/npm: the BIDS validator;
# git: datalad-style dataset metadata read by pybids and templateflow.  Only installed when missing, so reruns stay fast.
apt_packages=(libsndfile1 git nodejs npm)
# FluidSynth and its General MIDI soundfont render the training corpus (bidsapp train);
# the container, which never trains, skips them with BIDSAPP_WITH_TRAINING=0.
if [[ "${BIDSAPP_WITH_TRAINING:-1}" == 1 ]]; then
  apt_packages+=(fluidsynth libfluidsynth3 fluid-soundfont-gm)
fi
# chromium: the report tests render sub-<label>.html and group.html headless
# (tests/reports/test_browser.py); the image (BIDSAPP_EDITABLE=0) does not need it.
if [[ "${BIDSAPP_WITH_BROWSER:-${BIDSAPP_EDITABLE:-1}}" == 1 ]]; then
  apt_packages+=(chromium)
fi
if [[ "${BIDSAPP_NO_APT:-0}" != 1 ]] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  # node/npm may come from outside Debian (e.g. nodesource); the binaries are what we need.
  if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    missing=("${missing[@]/nodejs/}"); missing=("${missing[@]/npm/}")
  fi
  pkgs=()
  for pkg in "${missing[@]}"; do [[ -n "$pkg" ]] && pkgs+=("$pkg"); done
  if ((${#pkgs[@]})); then
    echo "install.sh: apt-get install ${pkgs[*]}"
    sudo_cmd=(); [[ "$(id -u)" != 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
      "${pkgs[@]}"
  fi
fi

if [[ ! -x "$venv/bin/python" ]]; then
  echo "install.sh: creating $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip setuptools wheel

# The BIDS validator (legacy 1.x, runs offline), kept inside the venv and linked into its bin/.
validator="$venv/node/node_modules/.bin/bids-validator"
if command -v npm >/dev/null 2>&1 && [[ ! -x "$validator" ]]; then
  npm install --prefix "$venv/node" --no-audit --no-fund --silent bids-validator@1.15.0 \
    || echo "install.sh: warning: bids-validator could not be installed; validation is skipped"
fi
[[ -x "$validator" ]] && ln -sf "$validator" "$venv/bin/bids-validator"

# torch first and pinned: 2.13.0 is the CPU wheel on this machine's disk; any looser spec
# makes pip fetch a multi-GB CUDA build.
torch_spec="${BIDSAPP_TORCH:-torch==2.13.0}"
if ! "${pip[@]}" install -q "$torch_spec"; then
  echo "install.sh: error: could not install $torch_spec; for torch==2.13.0+cpu give pip an" \
    "index or folder that has it, e.g. PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu" >&2
  exit 1
fi
# antspyx 0.6.3 needs numpy<2.4 and scipy<1.16; the rest co-install with those caps.
# Editable in a checkout (developers, CI); a plain install in the container image.
extras="dev"
[[ "${BIDSAPP_WITH_TRAINING:-1}" == 1 ]] && extras="dev,training"
if [[ "${BIDSAPP_DEPS_ONLY:-0}" == 1 ]]; then
  # The requirements of pyproject.toml (and the extras), without the package itself.
  mapfile -t requirements < <("$venv/bin/python" - "$repo/pyproject.toml" "$extras" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
reqs = list(project["dependencies"])
for extra in sys.argv[2].split(","):
    reqs += project["optional-dependencies"][extra]
print("\n".join(r for r in reqs if not r.startswith("torch")))
PY
  )
  "${pip[@]}" install -q -c "$repo/scripts/constraints.txt" "$torch_spec" "${requirements[@]}"
  "$venv/bin/python" -c "import torch, ants, nipype, bids, nilearn; print('install.sh: dependencies ok, torch', torch.__version__)"
  exit 0
elif [[ "${BIDSAPP_EDITABLE:-1}" == 1 ]]; then
  "${pip[@]}" install -q -c "$repo/scripts/constraints.txt" -e "$repo[$extras]"
else
  "${pip[@]}" install -q -c "$repo/scripts/constraints.txt" "$repo[$extras]"
fi

# Bundled network weights: until a trained release is committed, generate the documented
# He-initialised, fixed-seed weights (marked "untrained"); a no-op when they are present.
"$venv/bin/python" -m bidsapp.audio.weights init-untrained "$repo/models"

"$venv/bin/python" -c "import bidsapp, torch, ants, nipype, bids, nilearn; print('install.sh: ok, bidsapp', bidsapp.__version__, 'torch', torch.__version__)"
