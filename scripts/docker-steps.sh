#!/usr/bin/env bash
# Performs the Dockerfile's build without a Docker engine, in a fresh temporary directory, and
# checks that the result starts and answers /healthz:
#
#   build stage:   the COPY steps (from the repository), then each RUN step exactly as written
#                  (npm ci, npm run build:image, npm prune --omit=dev)
#   runtime stage: the COPY --from=build steps, then the ENTRYPOINT run as the USER uid:gid
#                  (through setpriv when this script runs as root), then the HEALTHCHECK command
#
# The steps are read from the Dockerfile itself, and the script first asserts that every kind of
# step it emulates is still there, so the two cannot drift apart silently. Uses the local Node.js
# (the image uses its own NODE_IMAGE) and the npm registry or cache for `npm ci`.
#
# Usage: scripts/docker-steps.sh        exit status 0 = every step and the health check passed
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERFILE="$ROOT/Dockerfile"
WORK=""
GATE_PID=""
RUNTIME_ENV=()

say() { printf 'docker-steps: %s\n' "$*"; }
fail() { printf 'docker-steps: FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local status=$?
  if [[ -n "$GATE_PID" ]] && kill -0 "$GATE_PID" 2>/dev/null; then
    kill -TERM "$GATE_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$GATE_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$GATE_PID" 2>/dev/null || true
    wait "$GATE_PID" 2>/dev/null || true
  fi
  if [[ -n "$WORK" && -d "$WORK" ]]; then rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT INT TERM

[[ -f "$DOCKERFILE" ]] || fail "no Dockerfile at $DOCKERFILE"

# Logical lines: continuation backslashes joined, comments and blank lines dropped.
mapfile -t LINES < <(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$DOCKERFILE" | sed -e 's/^[[:space:]]*//' | grep -v -e '^#' -e '^$')

# Every kind of step emulated below must still be in the Dockerfile.
require() {
  local re=$1 what=$2
  printf '%s\n' "${LINES[@]}" | grep -Eq "$re" || fail "Dockerfile has no $what (/$re/): update scripts/docker-steps.sh with it"
}
require '^FROM [^ ]+ AS build$' 'build stage'
require '^FROM [^ ]+ AS runtime$' 'runtime stage'
require '^WORKDIR /app$' 'WORKDIR /app'
require '^COPY package\.json package-lock\.json \./$' 'COPY of the package manifests'
require '^RUN npm ci( |$)' 'RUN npm ci'
require '^RUN npm run build:image$' 'RUN npm run build:image'
require '^RUN npm prune --omit=dev( |$)' 'RUN npm prune --omit=dev'
require '^COPY --from=build /app/node_modules ' 'COPY of the pruned node_modules'
require '^COPY --from=build /app/dist/src ' 'COPY of dist/src'
require '^USER [0-9]+:[0-9]+$' 'numeric USER'
require '^EXPOSE 9190 9191 9192$' 'EXPOSE of the three ports'
require '^HEALTHCHECK .*CMD \[' 'HEALTHCHECK in exec form'
require '^ENTRYPOINT \[' 'ENTRYPOINT in exec form'

WORK=$(mktemp -d "${TMPDIR:-/tmp}/plugin-gate-docker-steps.XXXXXX")
BUILD="$WORK/build"
RUNTIME="$WORK/runtime"
mkdir -p "$BUILD" "$RUNTIME"
# The runtime user must be able to reach the runtime tree.
chmod 755 "$WORK" "$RUNTIME"

# Map an image path (/app/x, ./x, x) to a path under the stage directory.
in_stage() {
  local stage=$1 p=$2
  p=${p#/app/}; p=${p#/app}; p=${p#./}
  printf '%s/%s' "$stage" "$p"
}

json_array() { # prints one element per line (NUL-free strings)
  node -e 'for (const s of JSON.parse(process.argv[1])) console.log(s)' "$1"
}

STAGE=""
USER_SPEC=""
ENTRYPOINT_JSON=""
HEALTH_JSON=""
for line in "${LINES[@]}"; do
  case "$line" in
    FROM*' AS build') STAGE=build; say "stage build (${line%% AS *})" ;;
    FROM*' AS runtime') STAGE=runtime; say "stage runtime" ;;
    FROM*) fail "unexpected stage: $line" ;;
    ARG*|WORKDIR*|EXPOSE*|LABEL*) ;;
    ENV\ *)
      # ENV K=V: applied to the commands of the stage it appears in.
      kv=${line#ENV }
      if [[ "$STAGE" == runtime ]]; then RUNTIME_ENV+=("$kv"); else export "${kv?}"; fi
      ;;
    COPY\ --from=build\ *)
      [[ "$STAGE" == runtime ]] || fail "COPY --from=build outside the runtime stage: $line"
      read -r -a parts <<<"${line#COPY --from=build }"
      dest=$(in_stage "$RUNTIME" "${parts[-1]}")
      for src in "${parts[@]:0:${#parts[@]}-1}"; do
        from=$(in_stage "$BUILD" "$src")
        [[ -e "$from" ]] || fail "$line: $src does not exist after the build stage"
        mkdir -p "$(dirname "$dest")"
        if [[ "${parts[-1]}" == */ || "${parts[-1]}" == ./ ]]; then mkdir -p "$dest"; cp -a "$from" "$dest/"; else cp -a "$from" "$dest"; fi
      done
      say "  $line"
      ;;
    COPY\ *)
      [[ "$STAGE" == build ]] || fail "COPY from the context outside the build stage: $line"
      read -r -a parts <<<"${line#COPY }"
      dest=$(in_stage "$BUILD" "${parts[-1]}")
      for src in "${parts[@]:0:${#parts[@]}-1}"; do
        [[ -e "$ROOT/$src" ]] || fail "$line: $src is not in the repository"
        if [[ "${parts[-1]}" == */ || "${parts[-1]}" == ./ ]]; then mkdir -p "$dest"; cp -a "$ROOT/$src" "$dest/"; else mkdir -p "$(dirname "$dest")"; cp -a "$ROOT/$src" "$dest"; fi
      done
      say "  $line"
      ;;
    RUN\ *)
      [[ "$STAGE" == build ]] || fail "RUN in the runtime stage is not emulated: $line"
      cmd=${line#RUN }
      say "  RUN $cmd"
      (cd "$BUILD" && bash -c "$cmd") || fail "step failed: RUN $cmd"
      ;;
    USER\ *) USER_SPEC=${line#USER } ;;
    HEALTHCHECK\ *) HEALTH_JSON=${line#*CMD } ;;
    ENTRYPOINT\ *) ENTRYPOINT_JSON=${line#ENTRYPOINT } ;;
    CMD\ *) fail "CMD is not emulated (the gate takes its arguments after ENTRYPOINT): $line" ;;
    *) fail "Dockerfile instruction not emulated: $line" ;;
  esac
done

# The runtime tree is what the image would hold.
[[ -f "$RUNTIME/dist/src/cli/main.js" ]] || fail "runtime tree has no dist/src/cli/main.js (did the build produce the CLI?)"
[[ ! -e "$RUNTIME/node_modules/typescript" ]] || fail "devDependencies survived npm prune (node_modules/typescript present)"
[[ -d "$RUNTIME/node_modules/@grpc/grpc-js" ]] || fail "runtime dependencies missing (node_modules/@grpc/grpc-js)"
say "runtime tree: $(du -sh "$RUNTIME" | cut -f1), $(find "$RUNTIME/node_modules" -maxdepth 2 -name package.json | wc -l) top-level packages"

# Run as the image's USER. As root, drop to that uid:gid; otherwise already unprivileged.
RUN_AS=()
uid=${USER_SPEC%%:*}
gid=${USER_SPEC##*:}
if [[ "$(id -u)" == 0 ]]; then
  command -v setpriv >/dev/null || fail "running as root and setpriv (util-linux) is missing: cannot drop to $USER_SPEC"
  RUN_AS=(setpriv "--reuid=$uid" "--regid=$gid" --clear-groups)
  say "runs as uid:gid $uid:$gid (setpriv)"
else
  say "runs as the current unprivileged user $(id -u):$(id -g) (image: $USER_SPEC)"
fi

free_port() {
  node -e 'const s = require("node:net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
ADMIN_PORT=$(free_port)

mapfile -t ENTRY < <(json_array "$ENTRYPOINT_JSON")
[[ ${#ENTRY[@]} -gt 0 ]] || fail "empty ENTRYPOINT"
ENTRY_ENV=(env "${RUNTIME_ENV[@]}")
LOG="$WORK/gate.log"
say "start: ${ENTRY[*]} --discovery static --targets 127.0.0.1:1 (admin on 127.0.0.1:$ADMIN_PORT)"
(
  cd "$RUNTIME"
  exec "${RUN_AS[@]}" "${ENTRY_ENV[@]}" "${ENTRY[@]}" \
    --discovery static --targets 127.0.0.1:1 \
    --grpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --poll-interval 500ms --drain 0s
) >"$LOG" 2>&1 &
GATE_PID=$!

status_of() {
  node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(1000) }).then((r) => console.log(r.status), () => console.log(0))' "$1"
}
code=0
for _ in $(seq 1 75); do
  kill -0 "$GATE_PID" 2>/dev/null || { cat "$LOG" >&2; fail "the gate exited during start-up"; }
  code=$(status_of "http://127.0.0.1:$ADMIN_PORT/healthz")
  [[ "$code" == 200 ]] && break
  sleep 0.2
done
[[ "$code" == 200 ]] || { cat "$LOG" >&2; fail "/healthz did not answer 200 within 15 s (last: $code)"; }
say "/healthz 200; /readyz $(status_of "http://127.0.0.1:$ADMIN_PORT/readyz") (its only target is unreachable)"

# The image's own HEALTHCHECK command, pointed at this run's admin port.
mapfile -t HEALTH < <(json_array "${HEALTH_JSON//9190/$ADMIN_PORT}")
(cd "$RUNTIME" && "${RUN_AS[@]}" "${HEALTH[@]}") || fail "HEALTHCHECK command failed: ${HEALTH[*]}"
say "HEALTHCHECK command exits 0"

# SIGTERM ends the process on its own (drain 0s): what `docker stop` relies on.
kill -TERM "$GATE_PID"
for _ in $(seq 1 50); do kill -0 "$GATE_PID" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$GATE_PID" 2>/dev/null; then fail "the gate did not exit within 10 s of SIGTERM"; fi
wait "$GATE_PID" 2>/dev/null || true
GATE_PID=""
RUNTIME_ENV=()
say "exits on SIGTERM"
say "OK"
