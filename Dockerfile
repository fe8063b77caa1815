# syntax=docker/dockerfile:1
# Image of the Alibaba Cloud provider for the Secrets Store CSI driver.
#
# Stage 1 builds wheels for the provider and every dependency (from pyproject.toml, nothing
# listed here, so the image gets exactly what CI installs minus the [test] extras). Stage 2
# installs them offline (--no-index) and keeps no build tools, caches or pip.
# The chart runs the container as root by default because the socket directory is a root-owned
# hostPath (every capability dropped, read-only root filesystem); the image itself defaults to
# an unprivileged user for any other use.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Third-party plugins to bake in, as pip requirements separated by spaces, e.g.
# --build-arg EXTRA_PACKAGES="ack-secrets-provider-oosparam==0.1.0" (the image has no pip at
# run time, so plugins are added at build time).
ARG EXTRA_PACKAGES=""

FROM ${PYTHON_IMAGE} AS build
ARG EXTRA_PACKAGES
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core/ core/
COPY backends/ backends/
COPY auth/ auth/
# hadolint ignore=SC2086,DL3013
RUN pip wheel --wheel-dir /wheels . ${EXTRA_PACKAGES}

FROM ${PYTHON_IMAGE}
ARG EXTRA_PACKAGES
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# hadolint ignore=SC2086,DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels \
        /wheels/csi_secrets_store_provider_alibabacloud-*.whl ${EXTRA_PACKAGES} \
    && pip uninstall --yes pip
USER 65532:65532
ENTRYPOINT ["ack-secrets-provider", "serve"]
