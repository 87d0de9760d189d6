#!/usr/bin/env bash
# Simulator throughput on one core (zero-latency profile, signed requests)
# and RSS with N open ConverseStream requests. See BENCHMARKS.md.
# Usage: scripts/bench-sim/run.sh [runs] [streams]   (streams 0: skip the RSS part)
# SIM=path/to/quarry-sim compares another build (same commands, same session).
#
# Per run it prints wrk's requests/s and the simulator's own CPU time per
# request (utime+stime from /proc, all threads, kernel time included), as
# "req per sim CPU-second": on a shared machine the scheduler may give the
# pinned simulator only part of its core, and this figure is what one whole
# core would serve. "waited" is the time the simulator was runnable but
# not running (other processes had its core), from /proc schedstat.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}; STREAMS=${2:-5000}; PORT=${PORT:-18800}; ADDR=127.0.0.1:$PORT
SIM=${SIM:-target/release/quarry-sim}; HERE=scripts/bench-sim
TCK=$(getconf CLK_TCK)
ulimit -n "$(ulimit -Hn)"  # 5,000 streams need > 10,000 descriptors (both ends)
start() { taskset -c 0 "$SIM" --listen "$ADDR" --config "$1" --threads 1 > /tmp/quarry-sim-bench.out & SIM_PID=$!; sleep 1; }
stop() { kill -TERM "$SIM_PID"; wait "$SIM_PID" || true; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SIM_PID/stat"; }
wait_ns() { cat /proc/"$SIM_PID"/task/*/schedstat | awk '{w += $2} END {printf "%.0f", w}'; }
start "$HERE/zero.toml"
for op in converse converse-stream; do
  for i in $(seq "$RUNS"); do
    python3 "$HERE/presign.py" "$ADDR" "$op" "/tmp/quarry-$op.lua"
    before=$(cpu_ticks); waited=$(wait_ns)
    taskset -c 1 wrk -t1 -c64 -d10s -s "/tmp/quarry-$op.lua" "http://$ADDR" > "/tmp/quarry-$op-$i.txt"
    after=$(cpu_ticks); waited=$(( $(wait_ns) - waited ))
    requests=$(awk '/requests in/ {print $1}' "/tmp/quarry-$op-$i.txt")
    rps=$(awk '/Requests\/sec/ {print $2}' "/tmp/quarry-$op-$i.txt")
    awk -v op="$op" -v i="$i" -v n="$requests" -v rps="$rps" -v t=$((after - before)) -v hz="$TCK" -v w="$waited" 'BEGIN {
      cpu = t / hz
      printf "%s run %d: %s req/s, sim CPU %.2f s (waited %.2f s for it), %.0f req per sim CPU-second, %.1f us CPU/request\n",
        op, i, rps, cpu, w / 1e9, (cpu > 0 ? n / cpu : 0), (n > 0 ? cpu * 1e6 / n : 0)
    }'
    grep "Non-2xx" "/tmp/quarry-$op-$i.txt" | sed "s/^/$op run $i: /" || true
  done
done
stop
[ "$STREAMS" -gt 0 ] || exit 0
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
