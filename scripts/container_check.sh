#!/usr/bin/env bash
# Build the Docker image from the repository's Dockerfile and run the app inside it as a lab
# would: --version, a tiny simulated dataset, the participant level (offline, BIDS folder
# read-only, an unprivileged UID), the group level, and the output file list compared with
# tests/data/expected_outputs.txt.  Records the image size and the build and run times.
#
#   bash scripts/container_check.sh              # CPU torch, the whole check
#   TORCH_VARIANT=cuda bash scripts/container_check.sh --build-only   # size of the CUDA image
#
# Environment:
#   BASE_IMAGE     the image to build on.  Default: python:3.11-slim-bookworm when the daemon
#                  has it (or can pull it), else bidsapp-base:bookworm, built here from
#                  Debian's packages with debootstrap and `docker import` (Python 3.11)
#   TORCH_VARIANT  cpu (default here) or cuda (the public image's torch).  The CPU wheel,
#                  torch==2.13.0+cpu, must be where pip looks: a find-links folder, or
#                  PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
#   IMAGE          tag of the image (default: bidsapp:check-<variant>)
#   TEMPLATES      TemplateFlow spaces downloaded at build time (default: the Dockerfile's,
#                  or none when TemplateFlow's server cannot be reached)
#   CHECK_DIR      data, outputs and logs of the runs (default: /var/tmp/bidsapp-container-check)
#   RESULTS        results file (default: benchmarks/results/container_check_<variant>.json)
#   RUN_AS         UID:GID the app runs as (default: yours; 4242:4242 when you are root)
# pip's settings here (find-links, extra-index-url, cert: env PIP_* or `pip config`) reach the
# build: local folders and the CA bundle are served on 127.0.0.1 to a --network host build.
#
# Reruns are fast: the build reuses every cached layer (an edit of bidsapp/ rebuilds only
# the package layer), the local base image is kept.  The runs start from an empty folder.
# dockerd and the local pip mirrors are started only when needed and stopped on exit.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
build_only=0
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "container_check: unknown argument $arg (see --help)" >&2; exit 64 ;;
  esac
done

variant="${TORCH_VARIANT:-cpu}"
image="${IMAGE:-bidsapp:check-$variant}"
check_dir="${CHECK_DIR:-/var/tmp/bidsapp-container-check}"
results="${RESULTS:-$repo/benchmarks/results/container_check_$variant.json}"
log_dir="$check_dir/logs"
mkdir -p "$log_dir"
export DOCKER_BUILDKIT=0  # the classic builder: no buildx plugin needed, --network host works

say() { echo "container_check: $*"; }
die() { echo "container_check: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$(now)"; }

# ---- what this script starts, it stops --------------------------------------------------
started_pids=()
cleanup() {
  local pid
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${started_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# ---- 1. a running Docker daemon ------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    [[ "$(id -u)" == 0 ]] || die "no Docker daemon runs and dockerd is not installed: sudo apt-get install docker.io"
    say "installing docker.io"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io
  fi
  [[ "$(id -u)" == 0 ]] || die "no Docker daemon runs; start it (sudo dockerd) or ask for the docker group"
  say "starting dockerd (log: $log_dir/dockerd.log); it is stopped on exit"
  dockerd >"$log_dir/dockerd.log" 2>&1 &
  started_pids+=("$!")
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "dockerd did not start; see $log_dir/dockerd.log"
fi
docker_version="$(docker version -f '{{.Server.Version}}')"
say "Docker $docker_version"

# ---- 2. the base image ---------------------------------------------------------------------
local_base="bidsapp-base:bookworm"
build_local_base() {
  command -v debootstrap >/dev/null 2>&1 \
    || { say "installing debootstrap"; apt-get install -y -qq debootstrap; }
  # Debian's mirror, the one apt uses here.
  local mirror root start
  mirror="$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null \
            | head -1 | awk '{print $2}')"
  mirror="${mirror:-http://deb.debian.org/debian}"
  root="$check_dir/base-rootfs"
  start="$(now)"
  say "building $local_base with debootstrap from $mirror (log: $log_dir/debootstrap.log)"
  rm -rf "$root"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$mirror" >"$log_dir/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $log_dir/debootstrap.log"
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian*}/debian-security bookworm-security main
EOF
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' \
    -m "Debian bookworm minbase + python3 (debootstrap, $mirror)" - "$local_base" >/dev/null
  rm -rf "$root"
  base_build_s="$(since "$start")"
  say "$local_base built in ${base_build_s} s"
}
base_build_s=null
if [[ -z "${BASE_IMAGE:-}" ]]; then
  if docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1 \
      || timeout 60 docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
    BASE_IMAGE=python:3.11-slim-bookworm
  else
    say "python:3.11-slim-bookworm cannot be pulled here; using $local_base"
    BASE_IMAGE="$local_base"
    docker image inspect "$local_base" >/dev/null 2>&1 || build_local_base
  fi
fi
base_python="$(docker run --rm --network none --entrypoint python3 "$BASE_IMAGE" -V)"
[[ "$base_python" == "Python 3.11."* ]] || die "$BASE_IMAGE has $base_python; the image needs 3.11"
say "base $BASE_IMAGE ($base_python)"

# ---- 3. pip, configured as on this machine ------------------------------------------------
# Local folders in pip's configuration (find-links, file:// indexes) are served over HTTP on
# 127.0.0.1 so that the build (--network host) sees what pip on the host sees.  The ports are
# fixed: build arguments are part of the layer cache key.
port=18710
served_url=""
serve() {  # serve DIR: a static file server for DIR on the next port; sets served_url
  local dir="$1"
  port=$((port + 1))
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$dir" \
    >>"$log_dir/pip-mirror.log" 2>&1 &
  started_pids+=("$!")
  served_url="http://127.0.0.1:$port"
}
pip_conf() {  # the value of a pip setting: env first, then pip config
  local env_name="$1" key="$2" value
  value="${!env_name:-}"
  [[ -n "$value" ]] || value="$(python3 -m pip config get "global.$key" 2>/dev/null || true)"
  echo "$value"
}
build_args=()
find_links="" extra_index=""
for entry in $(pip_conf PIP_FIND_LINKS find-links); do
  path="${entry#file://}"
  [[ -d "$path" ]] || { find_links+=" $entry"; continue; }
  # The CUDA build must not pick the local CPU wheel, which also satisfies torch==2.13.0.
  if [[ "$variant" == cuda ]] && compgen -G "$path/torch-*+cpu-*.whl" >/dev/null; then
    continue
  fi
  serve "$path"
  find_links+=" $served_url"
done
for entry in $(pip_conf PIP_EXTRA_INDEX_URL extra-index-url); do
  path="${entry#file://}"
  if [[ "$entry" == file://* && "$path" == */simple && -d "$path" ]]; then
    serve "${path%/simple}"  # the index's links climb to ../../files
    extra_index+=" $served_url/simple"
  elif [[ "$entry" != file://* ]]; then
    extra_index+=" $entry"
  fi
done
[[ -n "$find_links" ]] && build_args+=(--build-arg "PIP_FIND_LINKS=${find_links# }")
[[ -n "$extra_index" ]] && build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=${extra_index# }")
index_url="$(pip_conf PIP_INDEX_URL index-url)"
[[ -n "$index_url" && "$index_url" != file://* ]] && build_args+=(--build-arg "PIP_INDEX_URL=$index_url")
# pip's CA bundle (a TLS-intercepting proxy's CA is in it): served for the build to trust
# during its steps only (scripts/build_ca.sh).
ca_bundle="$(pip_conf PIP_CERT cert)"
if [[ -n "$ca_bundle" && -f "$ca_bundle" ]]; then
  mkdir -p "$check_dir/ca"
  cp "$ca_bundle" "$check_dir/ca/ca.pem"
  serve "$check_dir/ca"
  build_args+=(--build-arg "BUILD_CA_URL=$served_url/ca.pem")
fi
# Every mirror answers before the build starts (a port taken by another program fails here).
for ((p = 18711; p <= port; p++)); do
  for _ in $(seq 20); do
    python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" \
      "$p" 2>/dev/null && break
    sleep 0.25
  done
done
for pid in "${started_pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || die "a local pip mirror did not start (port taken?); see $log_dir/pip-mirror.log"
done

# TemplateFlow's server: when it cannot be reached, the image holds the nilearn template only.
if [[ -z "${TEMPLATES+set}" ]]; then
  if ! python3 -c "import urllib.request; urllib.request.urlopen('https://templateflow.s3.amazonaws.com/tpl-MNI152NLin2009cAsym/template_description.json', timeout=15)" 2>/dev/null; then
    say "TemplateFlow's server cannot be reached: the image gets MNI152NLin2009aSym from nilearn only"
    TEMPLATES=""
  fi
fi
[[ -n "${TEMPLATES+set}" ]] && build_args+=(--build-arg "TEMPLATES=$TEMPLATES")

# ---- 4. build --------------------------------------------------------------------------------
say "building $image (TORCH_VARIANT=$variant; log: $log_dir/build-$variant.log)"
start="$(now)"
docker build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --build-arg "TORCH_VARIANT=$variant" "${build_args[@]}" -t "$image" . \
  >"$log_dir/build-$variant.log" 2>&1 \
  || { tail -30 "$log_dir/build-$variant.log" >&2; die "docker build failed; see $log_dir/build-$variant.log"; }
build_s="$(since "$start")"
cached_steps="$(grep -c 'Using cache' "$log_dir/build-$variant.log" || true)"
# Cold: the dependency layer (apt, the validator, torch, the Python packages) was built.
cold=false
grep -q "install.sh: dependencies ok" "$log_dir/build-$variant.log" && cold=true
image_bytes="$(docker image inspect -f '{{.Size}}' "$image")"
base_bytes="$(docker image inspect -f '{{.Size}}' "$BASE_IMAGE")"
torch_version="$(docker run --rm --network none --entrypoint python "$image" -c 'import torch; print(torch.__version__)')"
say "built in ${build_s} s ($cached_steps steps from the cache); image $((image_bytes / 1000000)) MB, base $((base_bytes / 1000000)) MB, torch $torch_version"

write_results() {  # KEY=VALUE ... -> the results file, as JSON
  python3 - "$results" "$@" <<'PY'
import json, os, platform, sys, time
out, pairs = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
def value(v):
    try:
        return json.loads(v)
    except ValueError:
        return v
record = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "host": {"cpus": os.cpu_count(), "machine": platform.machine()}}
record.update({k: value(v) for k, v in pairs.items()})
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
print(json.dumps(record, indent=2))
PY
}
common_results=(docker="$docker_version" base_image="$BASE_IMAGE" base_python="${base_python#Python }"
  base_bytes="$base_bytes" base_build_s="$base_build_s" torch_variant="$variant"
  torch="$torch_version" image="$image" image_bytes="$image_bytes" build_s="$build_s"
  build_cold="$cold" build_cached_steps="$cached_steps")
if ((build_only)); then
  write_results "${common_results[@]}"
  exit 0
fi

# ---- 5. run it as a lab would -----------------------------------------------------------------
run_as="${RUN_AS:-$(id -u):$(id -g)}"
[[ "$run_as" == 0:* ]] && run_as=4242:4242  # as root here: an unprivileged UID with no passwd entry
data="$check_dir/data"
rm -rf "$data"
mkdir -p "$data/out" "$data/work"
chown -R "$run_as" "$data"
declare -A step_s
timed() {  # timed NAME LOG docker-run-args...: run, time, fail with the log's tail
  local name="$1" log="$2" start
  shift 2
  start="$(now)"
  if ! docker run --rm "$@" >"$log" 2>&1; then
    tail -30 "$log" >&2
    die "$name failed; see $log"
  fi
  step_s[$name]="$(since "$start")"
  say "$name: ${step_s[$name]} s"
}
# Offline, read-only image, the BIDS folder read-only, an unprivileged UID without a home.
lab=(--network none --read-only --tmpfs /tmp -e HOME=/tmp -u "$run_as")

timed version "$log_dir/version.log" "${lab[@]}" "$image" --version
grep -q "$(cat version)" "$log_dir/version.log" || die "--version does not print $(cat version)"
say "$(tail -1 "$log_dir/version.log")"
timed simulate "$log_dir/simulate.log" "${lab[@]}" -v "$data:/data" "$image" \
  simulate /data/bids --preset tiny --seed 0

# The default output space, when the image holds its template; otherwise the run must stop
# at once with exit 66 and the fix, and the check goes on in the space nilearn ships.
space_args=()
space="$(docker run --rm --network none --entrypoint python "$image" \
  -c 'from bidsapp.config import DEFAULT_SPACE; print(DEFAULT_SPACE)')"
if ! docker run --rm --network none "$image" templates list | grep -E "^$space +ready" >/dev/null; then
  rc=0
  docker run --rm "${lab[@]}" -v "$data/bids:/bids:ro" -v "$data/out:/out" \
    "$image" /bids /out participant --participant-label 01 -w /tmp/work \
    >"$log_dir/participant-default-space.log" 2>&1 || rc=$?
  [[ "$rc" == 66 ]] || die "without $space in the image, exit 66 was expected, got $rc"
  grep -q "$space" "$log_dir/participant-default-space.log" \
    || die "the missing-template message does not name $space"
  say "$space is not in this image: the run stopped with exit 66 naming it, as it should"
  space=MNI152NLin2009aSym
  space_args=(--output-space "$space")
  rm -rf "${data:?}/out" && mkdir -p "$data/out" && chown "$run_as" "$data/out"
fi

# The options of the end-to-end test and CircleCI: the fast normalization, 20 permutations.
opts=(-w /work --nprocs 2 --omp-nthreads 1 --normalization-quality fast --n-permutations 20
      "${space_args[@]}")
for sub in 01 02; do
  timed "participant_$sub" "$log_dir/participant-$sub.log" "${lab[@]}" \
    -v "$data/bids:/bids:ro" -v "$data/out:/out" -v "$data/work:/work" \
    "$image" /bids /out participant --participant-label "$sub" "${opts[@]}"
done
timed group "$log_dir/group.log" "${lab[@]}" \
  -v "$data/bids:/bids:ro" -v "$data/out:/out" -v "$data/work:/work" \
  "$image" /bids /out group -w /work "${space_args[@]}"

# ---- 6. the outputs --------------------------------------------------------------------------
# As the end-to-end test: every file but logs/, content hashes normalised, sorted.
(cd "$data/out" && find . -type f ! -path './logs/*' | sed 's|^\./||' \
  | sed -E 's/_[0-9a-f]{16}_features\.npz$/_<hash>_features.npz/' | LC_ALL=C sort) \
  >"$log_dir/outputs.txt"
sed "s/space-MNI152NLin2009aSym/space-$space/g" tests/data/expected_outputs.txt \
  >"$log_dir/expected_outputs.txt"
diff -u "$log_dir/expected_outputs.txt" "$log_dir/outputs.txt" \
  || die "the output files differ from tests/data/expected_outputs.txt (diff above)"
n_files="$(wc -l <"$log_dir/outputs.txt")"
foreign="$(find "$data/out" ! -user "${run_as%%:*}" | head -3)"
[[ -z "$foreign" ]] || die "outputs not owned by $run_as: $foreign"
say "the $n_files output files match tests/data/expected_outputs.txt, all owned by $run_as"

write_results "${common_results[@]}" run_as="$run_as" output_space="$space" \
  run_options="${opts[*]}" outputs_match=true output_files="$n_files" \
  version_s="${step_s[version]}" simulate_s="${step_s[simulate]}" \
  participant_01_s="${step_s[participant_01]}" participant_02_s="${step_s[participant_02]}" \
  group_s="${step_s[group]}"
say "passed; results in ${results#"$repo"/}"
