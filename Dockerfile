# syntax=docker/dockerfile:1
# The shop and the payment simulator (binaries `shop` and `payments-sim`) as one small runtime image.
# Build: docker build -t shop:local .   (deploy/local/compose.yaml builds it for you)

# --- build stage: the whole workspace, release profile, locked dependencies -------------
FROM rust:1.88-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations
RUN cargo build --release --locked -p shop -p payments-sim \
 && strip target/release/shop target/release/payments-sim

# --- runtime stage: Debian slim, one binary, a non-root user -----------------------------
FROM debian:12.11-slim AS runtime
# curl only for the HEALTHCHECK below (the binary has no health sub-command); versions come
# with the pinned base image's snapshot, so apt packages are not pinned one by one.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --create-home shop
COPY --from=build /src/target/release/shop /src/target/release/payments-sim /usr/local/bin/
USER 10001:10001
WORKDIR /app
# Listen on every interface inside the container; the SQLite file lives in /app/data
# (a volume in compose). JSON lines on stdout.
ENV APP_HOST=0.0.0.0 \
    PORT=8080 \
    DATABASE_URL=sqlite:///app/data/shop.db?mode=rwc \
    APP_LOG_FORMAT=json
RUN mkdir -p /app/data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["sh", "-c", "curl -fsS http://127.0.0.1:${PORT}/healthz >/dev/null || exit 1"]
ENTRYPOINT ["/usr/local/bin/shop"]
