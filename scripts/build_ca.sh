# Sourced by the Dockerfile's RUN steps.  Behind a TLS-intercepting proxy, pip and npm in the
# build must trust the proxy's CA: BUILD_CA_URL names a CA bundle (PEM) that the build host
# serves over plain HTTP (scripts/container_check.sh does, from pip's `cert` setting).  The
# bundle is trusted for the step that sources this file only; the step removes it again, so
# no layer keeps it.  Without BUILD_CA_URL this does nothing.
if [[ -n "${BUILD_CA_URL:-}" ]]; then
  python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
    "$BUILD_CA_URL" /tmp/build-ca.pem \
    || { echo "build_ca.sh: cannot fetch BUILD_CA_URL=$BUILD_CA_URL" >&2; return 1; }
  export PIP_CERT=/tmp/build-ca.pem NODE_EXTRA_CA_CERTS=/tmp/build-ca.pem \
    SSL_CERT_FILE=/tmp/build-ca.pem REQUESTS_CA_BUNDLE=/tmp/build-ca.pem
fi
