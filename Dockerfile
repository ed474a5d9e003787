# bidsapp: a BIDS-App for searchlight RSA of a 1D ResNet-18's layers against music-listening fMRI.
#   docker build -t bidsapp .
#   docker run --rm -v /data/bids:/bids:ro -v /data/out:/out bidsapp /bids /out participant
# The image installs itself with scripts/install.sh, the same script CI runs.
#
# Build arguments (docs/installation.md):
#   BASE_IMAGE     any Debian bookworm image with Python 3.11 as python3 (default: the public
#                  python:3.11-slim-bookworm; scripts/container_check.sh builds one with debootstrap)
#   TORCH_VARIANT  cuda (default: PyPI's torch, CUDA 13, serves --gpus all and Apptainer --nv) or
#                  cpu (torch==2.13.0+cpu, about 5 GB smaller; give pip an index that has it, e.g.
#                  --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu)
#   TEMPLATES      TemplateFlow spaces downloaded at build time (needs TemplateFlow's server);
#                  MNI152NLin2009aSym, when not downloaded, is copied from nilearn (offline)
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS: where pip looks, as on the host
#   BUILD_CA_URL   a CA bundle (PEM, over http) that pip and npm trust during the build only,
#                  for a TLS-intercepting proxy (scripts/build_ca.sh); no layer keeps it
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TORCH_VARIANT=cuda
ARG TEMPLATES="MNI152NLin2009cAsym MNI152NLin2009aSym"
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG BUILD_CA_URL

ENV DEBIAN_FRONTEND=noninteractive \
    BIDSAPP_VENV=/opt/venv \
    BIDSAPP_EDITABLE=0 \
    BIDSAPP_WITH_TRAINING=0 \
    BIDSAPP_CONTAINER=bidsapp \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    TEMPLATEFLOW_AUTOUPDATE=0 \
    PYTHONPATH="" \
    PYTHONNOUSERSITE=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/bidsapp

# The dependencies first, from the install script and the package metadata only, so that an
# edit of the code does not redo this layer (the slow one: torch, antspyx, nodejs).
COPY scripts/install.sh scripts/constraints.txt scripts/fetch_templates.py \
     scripts/build_ca.sh scripts/
COPY pyproject.toml version README.md ./
RUN source scripts/build_ca.sh \
    && case "$TORCH_VARIANT" in \
      cuda) torch_spec="torch==2.13.0" ;; \
      cpu) torch_spec="torch==2.13.0+cpu" ;; \
      *) echo "TORCH_VARIANT must be cuda or cpu, not '$TORCH_VARIANT'" >&2; exit 64 ;; \
    esac \
    && BIDSAPP_TORCH="$torch_spec" BIDSAPP_DEPS_ONLY=1 bash scripts/install.sh \
    && rm -rf /root/.cache /root/.npm /var/lib/apt/lists/* /tmp/build-ca.pem \
    && find /opt/venv \( ! -perm -o+r -o -type d ! -perm -o+x \) -exec chmod a+rX {} +

# Templates are fetched at build time: the app never touches the network at run time.
RUN source scripts/build_ca.sh \
    && read -ra spaces <<< "$TEMPLATES" \
    && if ((${#spaces[@]})); then python scripts/fetch_templates.py "${spaces[@]}"; fi \
    && rm -f /tmp/build-ca.pem \
    && mkdir -p /opt/templateflow && chmod -R a+rX /opt/templateflow

# The package, the bundled network weights (checked by sha256 at load time) and the entry point.
COPY bidsapp/ bidsapp/
COPY models/ models/
COPY run.py ./
# BIDSAPP_TORCH=torch: the torch of the dependency layer stays (PyPI's CUDA build calls
# itself 2.13.0+cu130, a version no index offers under that name).
RUN source scripts/build_ca.sh \
    && BIDSAPP_TORCH=torch bash scripts/install.sh \
    && { bidsapp templates list | grep -E '^MNI152NLin2009aSym +ready' >/dev/null \
         || bidsapp templates seed-nilearn; } \
    && bidsapp templates list \
    && rm -rf /root/.cache /root/.npm /var/lib/apt/lists/* /opt/bidsapp/build /tmp/build-ca.pem \
    && find /opt/venv /opt/templateflow /opt/bidsapp \( ! -perm -o+r -o -type d ! -perm -o+x \) -exec chmod a+rX {} +

RUN useradd --create-home --uid 1000 bidsapp
USER 1000
ENV HOME=/home/bidsapp

ENTRYPOINT ["/opt/venv/bin/python", "/opt/bidsapp/run.py"]
