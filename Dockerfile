# One image for every service of docker-compose.yml: the Ray head, the GPU workers, the
# `nas` search driver and optuna-dashboard. Driver and workers must run the same Python, Ray
# and torch, so they share this image.
#
#   docker build -t nas:latest .          (docker compose build does the same)
#
# No secrets here: the database password and the Ray token come from the env file at run
# time (see .env.example).
ARG BASE_IMAGE=pytorch/pytorch:2.10.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ARG OPTUNA_DASHBOARD_VERSION=0.21.0
ARG NAS_UID=1000

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CUDA_DEVICE_ORDER=PCI_BUS_ID

# Dependencies first, so editing the code does not reinstall Ray, Optuna and friends. The
# base image's torch and torchvision satisfy pyproject's ranges and are kept.
WORKDIR /opt/nas
COPY pyproject.toml README.md ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt "optuna-dashboard==${OPTUNA_DASHBOARD_VERSION}" \
    && rm /tmp/requirements.txt

COPY search_spaces ./search_spaces
COPY workers ./workers
COPY nas ./nas
COPY docker ./docker
RUN pip install --no-deps . \
    && chmod 0755 docker/*.sh \
    && nas --version

# Non-root: Ray, the driver and the dashboards need no privileges. /results is the driver's
# working directory (a named volume), /data the CIFAR-10 mount, /gpu-slots the workers'
# shared lock directory (docker/ray-worker.sh), /tmp/ray Ray's temp dir (on the head, the
# ray-tmp volume that Prometheus and Grafana read; a new volume takes this owner).
RUN useradd --create-home --uid "${NAS_UID}" --shell /bin/bash nas \
    && mkdir -p /results /data /gpu-slots /tmp/ray \
    && chown nas:nas /results /data /gpu-slots /tmp/ray
USER nas
WORKDIR /results
ENV NAS_DATA_DIR=/data

# compose runs every service with `init: true` (Ray starts many processes that need
# reaping); with plain `docker run`, add --init.
ENTRYPOINT ["/opt/nas/docker/entrypoint.sh"]
CMD ["nas", "--help"]
