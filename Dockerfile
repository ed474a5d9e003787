# bidsapp: a BIDS-App for searchlight RSA of a 1D ResNet-18's layers against music-listening fMRI.
#   docker build -t bidsapp .
#   docker run --rm -v /data/bids:/bids:ro -v /data/out:/out bidsapp /bids /out participant
# The image installs itself with scripts/install.sh, the same script CI runs.
FROM python:3.11.7-slim-bookworm

ENV DEBIAN_FRONTEND=noninteractive \
    BIDSAPP_VENV=/opt/venv \
    BIDSAPP_EDITABLE=0 \
    BIDSAPP_WITH_TRAINING=0 \
    BIDSAPP_CONTAINER=bidsapp \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    PYTHONPATH="" \
    PYTHONNOUSERSITE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/bidsapp

# Install scripts and metadata first so that code edits do not redo the dependency layer.
COPY scripts/ scripts/
COPY pyproject.toml version README.md ./
COPY bidsapp/ bidsapp/
# The bundled network weights (and their sidecars), checked by sha256 at load time.
COPY models/ models/
COPY run.py ./

RUN bash scripts/install.sh \
    && rm -rf /root/.cache /root/.npm /var/lib/apt/lists/*

# Templates are fetched at build time: the app never touches the network at run time.
RUN python scripts/fetch_templates.py MNI152NLin2009cAsym MNI152NLin2009aSym \
    && chmod -R a+rX /opt/templateflow /opt/bidsapp /opt/venv

RUN useradd --create-home --uid 1000 bidsapp
USER 1000
ENV HOME=/home/bidsapp

ENTRYPOINT ["/opt/venv/bin/python", "/opt/bidsapp/run.py"]
