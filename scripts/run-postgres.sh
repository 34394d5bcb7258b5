#!/usr/bin/env bash
# Starts the four services as separate processes on one PostgreSQL database (each in its own schema)
# and prints where they listen. Ctrl-C stops them all. Expects the binaries in bin/ (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
export DATABASE_URL
export FILING_ADDR=${FILING_ADDR:-127.0.0.1:50051}
export VERIFICATION_ADDR=${VERIFICATION_ADDR:-127.0.0.1:50052}
export SMS_DISPATCH_ADDR=${SMS_DISPATCH_ADDR:-127.0.0.1:50053}
export DEADLINE_ADDR=${DEADLINE_ADDR:-127.0.0.1:50054}
# The development HMAC key of cmd/internal/devserver (DevHMACKey), so codes survive a restart of
# verification and both dev setups on one database verify each other's codes; it is public:
# production sets its own secret.
# The development setup keeps its open defaults (no portal auth, console provider, no internal
# credential) on PostgreSQL only because it says so; each service logs them.
export INSECURE_DEV=true
export HMAC_KEYS=${HMAC_KEYS:-dev1:69637076657269667920646576656c6f706d656e74206b6579206e6f742073656372657421}
# The development seal key (DevSealKey) of verification's outbox and sms-dispatch's queued texts;
# public too.
export SEAL_KEYS=${SEAL_KEYS:-dev1:69637076657269667920646576207365616c206b65793a207075626c69632121}

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap stop EXIT INT TERM
start() { # name addr
  GRPC_ADDR=$2 ./bin/$1 >"${LOG_DIR:-/tmp}/icpverify-$1.log" 2>&1 &
  pids+=($!)
  echo "$1 listening on $2 (log: ${LOG_DIR:-/tmp}/icpverify-$1.log)"
}
start filing "$FILING_ADDR"
start verification "$VERIFICATION_ADDR"
start sms-dispatch "$SMS_DISPATCH_ADDR"
start deadline "$DEADLINE_ADDR"
echo "database: ${DATABASE_URL%%\?*} (schemas filing, verification, sms_dispatch, deadline); console SMS provider: codes appear in /tmp/icpverify-sms-dispatch.log"
echo "Ctrl-C stops the suite."
wait -n
