# remixtv in a container: Debian's ffmpeg 5.1 (libx264, libass, flite, ebur128), the fonts the
# credits need, the locked Python packages, and the CLI as entrypoint, run as a non-root user.
#   docker build -t remixtv .
#   docker run --rm -v "$PWD/work:/work" remixtv demo --out /work/out
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ffmpeg fonts-dejavu-core fonts-noto-core fonts-noto-cjk fonts-symbola libgl1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/remixtv
COPY requirements.lock pyproject.toml ./
RUN pip install --no-cache-dir -r requirements.lock
COPY render ./render
COPY flows ./flows
COPY assets ./assets
COPY episode_specs ./episode_specs
# editable, so the house fonts and episode specs stay beside the code that finds them
RUN pip install --no-cache-dir --no-deps -e . \
 && useradd --create-home --uid 10001 remixtv \
 && mkdir /work /opt/remixtv/callouts && chown remixtv /work /opt/remixtv/callouts

USER remixtv
ENV DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false REMIXTV_CACHE=/work/cache NUMBA_CACHE_DIR=/work/cache/numba
WORKDIR /work
ENTRYPOINT ["remixtv"]
CMD ["--help"]
