#!/usr/bin/env bash
# Request throughput of `quarry run` (in-process agent and embedded
# simulator with zero latency and quotas high enough never to throttle;
# 64 virtual users; 20,000 signed ConverseStream requests) with tracing off,
# at 1% and at 100% sampling (no per-second cap), exporting spans and
# metrics over OTLP/gRPC to a local receiver.
#
# Each round runs the three configurations back to back, so drift on this
# shared machine hits all three alike; the throughput is the run's own
# (requests / time firing, from the report: set-up and the final flush
# excluded) and the whole-process CPU comes from /usr/bin/time.
# Figures go to BENCHMARKS.md "Tracing".
#
#   scripts/bench-tracing/run.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
cargo build --release -p quarry -p quarry-e2e --bin quarry --bin otlp-sink
bin="$PWD/target/release"
work=$(mktemp -d)
trap 'kill $sink 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/otlp-sink" >"$work/sink.out" &
sink=$!
for _ in $(seq 50); do [ -s "$work/sink.out" ] && break; sleep 0.1; done
endpoint=$(head -1 "$work/sink.out")

cat >"$work/sim.toml" <<'SIM'
latency = { kind = "zero" }
[[models]]
id = "meta.llama3-3-70b-instruct-v1:0"
quotas = { tpm = 1000000000, cross_region_tpm = 1000000000 }
SIM
spec() { # $1 = name, $2 = telemetry section
  cat >"$work/$1.toml" <<SPEC
seed = 1
[target]
sim_profile = "sim.toml"
[load]
concurrency = 64
requests = 20000
[[workload]]
model = "meta.llama3-3-70b-instruct-v1:0"
operation = "ConverseStream"
input_tokens = 200
max_tokens = 32
$2
SPEC
}
spec off ""
spec one $'[telemetry]\nsample_ratio = 0.01\nmax_spans_per_second = 0'
spec all $'[telemetry]\nsample_ratio = 1.0\nmax_spans_per_second = 0'

printf '%-5s %-6s %10s %8s %8s  %s\n' round config req/s cpu_s rss_MB telemetry
for round in $(seq "$rounds"); do
  for config in off one all; do
    out="$work/$config-$round"
    flags=()
    [ "$config" != off ] && flags=(--otlp-endpoint "$endpoint")
    /usr/bin/time -f '%U %S %M' -o "$work/time" \
      "$bin/quarry" run "$work/$config.toml" "${flags[@]}" --out "$out" >/dev/null 2>&1
    read -r user sys rss <"$work/time"
    rate=$(sed -n 's/^requests .*ended (\([0-9,]*\)\/s.*/\1/p' "$out/report.txt" | tr -d ,)
    note=$(grep -m1 '^telemetry:' "$out/report.txt" | cut -c1-60 || true)
    printf '%-5s %-6s %10s %8.2f %8.1f  %s\n' "$round" "$config" "$rate" \
      "$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc -l)" "$note"
  done
done
