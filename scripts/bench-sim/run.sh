#!/usr/bin/env bash
# Simulator throughput on one core (zero-latency profile, signed requests)
# and RSS with N open ConverseStream requests. See BENCHMARKS.md.
# Usage: scripts/bench-sim/run.sh [runs] [streams]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}; STREAMS=${2:-5000}; PORT=18800; ADDR=127.0.0.1:$PORT
SIM=target/release/quarry-sim; HERE=scripts/bench-sim
ulimit -n "$(ulimit -Hn)"  # 5,000 streams need > 10,000 descriptors (both ends)
start() { taskset -c 0 "$SIM" --listen "$ADDR" --config "$1" --threads 1 > /tmp/quarry-sim-bench.out & SIM_PID=$!; sleep 1; }
stop() { kill -TERM "$SIM_PID"; wait "$SIM_PID" || true; }
start "$HERE/zero.toml"
for op in converse converse-stream; do
  for i in $(seq "$RUNS"); do
    python3 "$HERE/presign.py" "$ADDR" "$op" "/tmp/quarry-$op.lua"
    taskset -c 1 wrk -t1 -c64 -d10s -s "/tmp/quarry-$op.lua" "http://$ADDR" | tee "/tmp/quarry-$op-$i.txt" | grep -E "Requests/sec|Non-2xx" | sed "s/^/$op run $i: /"
  done
done
stop
start "$HERE/slow.toml"
python3 "$HERE/presign.py" "$ADDR" converse-stream /tmp/quarry-hold.lua
echo "RSS idle: $(grep VmRSS /proc/$SIM_PID/status)"
taskset -c 1 wrk -t1 -c"$STREAMS" -d25s --timeout 60s -s /tmp/quarry-hold.lua "http://$ADDR" > /tmp/quarry-hold.txt &
WRK=$!
sleep 15
echo "open streams: $(curl -s "http://$ADDR/_quarry/stats" | python3 -c 'import json,sys; print(sum(l["active_streams"] for l in json.load(sys.stdin)["lanes"]))')"
echo "RSS with $STREAMS streams: $(grep VmRSS /proc/$SIM_PID/status)"
wait "$WRK" || true
stop
