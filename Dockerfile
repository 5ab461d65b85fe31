# Build and run sluice in a container.
#   docker build -t sluice . && docker run -p 1935:1935 -p 1985:1985 -p 8080:8080 sluice
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# libopus (WebRTC's AAC → Opus) and OpenSSL (WebRTC's DTLS/SRTP) are linked from Debian.
RUN apt-get update && apt-get install -y --no-install-recommends libopus-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
RUN cargo build --release --locked -p sluice

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg ca-certificates libopus0 libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
COPY conf /etc/sluice
WORKDIR /var/lib/sluice
EXPOSE 1935 1985 8080 8000/udp
# The embedded default config: RTMP 1935, API 1985, HTTP 8080, HLS under ./objs/nginx/html.
# Mount your own with -v ./my.conf:/etc/sluice/sluice.conf and add: -c /etc/sluice/sluice.conf
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/local/bin/sluice"]
