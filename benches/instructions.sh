#!/usr/bin/env bash
# Instructions per transaction Bundle in the whole gateway, counted by valgrind's callgrind.
#
# Wall-clock benchmarks on a shared 2-core VM move by ±25% within minutes; instruction counts do
# not, so this compares two builds of the intake path where `intake_load` cannot. It counts user
# space only (not the kernel's time in write/fsync), on every gateway thread (request threads,
# SQLite writer, syncer, checkpointer).
#
#   benches/instructions.sh [GATEWAY_BINARY] [BUNDLES]
#
# Default binary: the one `cargo bench --bench intake_load --no-run` builds (target/release).
# It starts the gateway under callgrind on a fresh SQLite file (delivery worker off, as in
# intake_load), sends 200 Bundles to warm up, zeroes the counters, sends BUNDLES (default 1,000)
# over 8 keep-alive connections, each with a GP reference of its own, and prints the total and
# the count per Bundle. The callgrind file stays in the temporary directory it names, for
# `callgrind_annotate`. Needs valgrind and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=${1:-target/release/sp-gateway}
bundles=${2:-1000}
port=${SP_BENCH_PORT:-18089}
work=$(mktemp -d)
bundle=fixtures/bundles/transaction-carer-support-carers-count.json

send() { # send COUNT TAG: POST COUNT copies of the Bundle, fail on any non-2xx
  python3 - "$port" "$1" "$2" "$bundle" <<'PY'
import http.client, sys, threading
port, count, tag, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = open(path, encoding="utf-8").read()
failed = []
def worker(first):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    for i in range(first, count, 8):
        text = body.replace("EMIS-REF-2026-004230", f"CG-{tag}-{i:08d}")
        connection.request("POST", "/fhir", text.encode(), {
            "Authorization": "Bearer demo-gp-token",
            "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
        answer = connection.getresponse()
        answer.read()
        if answer.status not in (200, 201):
            failed.append(answer.status)
threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
if failed:
    sys.exit(f"{len(failed)} requests failed, first status {failed[0]}")
PY
}

export SP_GATEWAY_STORAGE__URL="sqlite://$work/gateway.db"
export SP_GATEWAY_SERVER__LISTEN="127.0.0.1:$port"
export SP_GATEWAY_DELIVERY__WORKER=false
export RUST_LOG=info
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "$binary" serve \
  >"$work/gateway.log" 2>&1 &
gateway=$!
trap 'kill $gateway 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/fhir/metadata" && break
  sleep 1
done
send 200 warm
callgrind_control -z "$gateway" >/dev/null 2>&1
send "$bundles" counted
callgrind_control -d "$gateway" >/dev/null 2>&1
kill "$gateway"
wait "$gateway" 2>/dev/null || true
dump=$(ls "$work"/callgrind.out.* | sort -t. -k3 -n | head -n 1)
total=$(callgrind_annotate "$dump" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "instructions: $total for $bundles Bundles, $((total / bundles)) per Bundle (callgrind file: $dump)"
