# syntax=docker/dockerfile:1
# Image of the Alibaba Cloud provider for the Secrets Store CSI driver.
#
# Reproducible: two builds of one commit get the same packages. Every dependency is pinned with
# its sha256 hashes in requirements/image.lock (regenerated from pyproject.toml by
# `python3 tasks.py lock`), the build tools in requirements/build.lock, and the base image can be
# pinned by digest: --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>.
# Stage 1 builds a wheel for the provider and for every locked dependency (hash-checked
# downloads); stage 2 installs them offline (--no-index) and keeps no build tools, caches or pip.
# The chart runs the container as root by default because the socket directory is a root-owned
# hostPath (every capability dropped, read-only root filesystem); the image itself defaults to
# an unprivileged user for any other use.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Third-party plugins to bake in, as pip requirements separated by spaces, e.g.
# --build-arg EXTRA_PACKAGES="ack-secrets-provider-oosparam==0.1.0" (the image has no pip at
# run time, so plugins are added at build time). They resolve with the lock as constraints.
ARG EXTRA_PACKAGES=""

FROM ${PYTHON_IMAGE} AS build
ARG EXTRA_PACKAGES
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY requirements/ requirements/
# --require-hashes also refuses any dependency missing from the lock. No build isolation: the
# few dependencies published only as sources build with the locked setuptools, not with
# whatever is newest on PyPI that day.
RUN pip install --require-hashes -r requirements/build.lock \
    && pip wheel --require-hashes --no-build-isolation --wheel-dir /wheels \
        -r requirements/image.lock
COPY pyproject.toml README.md LICENSE ./
COPY core/ core/
COPY backends/ backends/
COPY auth/ auth/
# hadolint ignore=SC2086
RUN pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels . \
    && if [ -n "${EXTRA_PACKAGES}" ]; then \
        pip wheel --wheel-dir /wheels --find-links /wheels \
            --constraint requirements/image.lock ${EXTRA_PACKAGES}; \
    fi

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG EXTRA_PACKAGES
# Filled in by `python3 tasks.py image` (pyproject.toml's version, the git commit and remote).
ARG VERSION=""
ARG REVISION=""
ARG SOURCE=""
LABEL org.opencontainers.image.title="csi-secrets-store-provider-alibabacloud" \
      org.opencontainers.image.description="Secrets Store CSI driver provider for Alibaba Cloud KMS Secrets Manager and OOS encrypted parameters" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# The wheelhouse holds exactly the locked packages (plus any plugins), so the offline install
# cannot pick anything else. Then the base image's packaging tools go: nothing installs at run time.
# hadolint ignore=SC2086,DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels \
        /wheels/csi_secrets_store_provider_alibabacloud-*.whl ${EXTRA_PACKAGES} \
    && pip uninstall --yes setuptools wheel pip
USER 65532:65532
ENTRYPOINT ["ack-secrets-provider", "serve"]
