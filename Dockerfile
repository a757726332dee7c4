# The tfcvr trainer image that Vertex AI custom training runs (`python -m trainer.vertex --image_uri=...`).
# Build and push: README, "Vertex AI". Its entrypoint is `python -m trainer.task`; a job's arguments follow it.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The package and its pinned dependency ranges (setup.py), installed as README's install command does.
WORKDIR /tmp/tfcvr
COPY . .
RUN pip install ".[vertex]" && rm -rf /tmp/tfcvr

# Training runs as an unprivileged user; gs:// paths need no local write access.
RUN useradd --create-home --uid 1000 tfcvr
USER tfcvr
WORKDIR /home/tfcvr

ENTRYPOINT ["python", "-m", "trainer.task"]
