# syntax=docker/dockerfile:1
#
# plugin-gate container image.
#
#   docker build -t plugin-gate:0.1.0 .
#   docker run --init -p 9190-9192:9190-9192 plugin-gate:0.1.0 --targets 10.0.0.5:5002
#
# Base: Node.js 26 ("Lithium"), the active LTS line since October 2026, on Debian 13 slim (no
# compilers, no curl). The code targets Node >= 20 and uses nothing newer; CI exercises these steps
# on the development machines' Node. Pin a digest (node:26-trixie-slim@sha256:...) for reproducible
# production builds.
#
# Process: the gate handles SIGTERM itself (drain, then exit) and spawns no children, so it can run
# as PID 1. It also handles SIGUSR1 (logged and ignored), which keeps Node's inspector closed
# (test/signals.test.ts, on the development machines' Node 20). The image's Node also accepts
# --disable-sigusr1, but scripts/docker-steps.sh replays this ENTRYPOINT on Node 20, which rejects it. `docker run --init` (tini) is still recommended outside Kubernetes, so that signals
# reach it the same way everywhere.
#
# scripts/docker-steps.sh performs these same steps without a Docker engine and checks that the
# result starts and answers /healthz; it asserts that each step it emulates is still written here.

ARG NODE_IMAGE=node:26-trixie-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
# Only what the image runs is compiled (tsconfig.build.json): src/ less the unit specs, the
# simulated fleet and the demo. Tests, benchmarks and CI build everything with tsconfig.json.
COPY src ./src
COPY proto ./proto
RUN npm run build:image
RUN npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/proto ./proto
# The official image's unprivileged "node" user (uid/gid 1000); numeric so that Kubernetes'
# runAsNonRoot can verify it.
USER 1000:1000
# 9190 admin (/healthz /readyz /status /metrics), 9191 gRPC ext_authz + grpc.health.v1,
# 9192 HTTP forward-auth.
EXPOSE 9190 9191 9192
# Slim images have no curl: ask node itself. Liveness only (/healthz); readiness is /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9190/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli/main.js"]
