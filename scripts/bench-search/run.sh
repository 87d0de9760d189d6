#!/usr/bin/env bash
# What the SLO search costs against a grid sweep that reaches the same
# precision, on the embedded simulator's TPM quota knee (BENCHMARKS.md,
# "Sweep search cost"):
#
#   scripts/bench-search/run.sh [LEVEL_SECONDS]
#
# An open-loop rate search from 10/s (doubling to 80, bisecting to the
# default 5% tolerance) against a TPM quota whose knee the quota arithmetic
# puts near 33.6/s for 3 s levels; then the grid a user would need for the
# same 5% precision over the same range without a search: rates 10 x 1.05^k
# up to 80 (43 levels). Prints levels run, wall time, feasible_max and
# infeasible_min of each. Uses the release `quarry` binary (built if
# missing) unless QUARRY names one. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
level_s="${1:-3}"
# QUARRY=path/to/quarry uses that binary instead (a level's wall time is
# its duration plus start and drain: the build hardly matters at these rates).
if [ -z "${QUARRY:-}" ]; then
  cargo build --release --locked -p quarry --bin quarry >/dev/null
  QUARRY="$PWD/target/release/quarry"
fi
quarry="$QUARRY"
work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

cat >"$work/sim.toml" <<'SIM'
seed = 1
default_account = false
latency = { kind = "fixed", ttft_ms = 20.0, gap_ms = 2.0 }
[[accounts]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
account_id = "123456789012"
quotas = { tpm = 12000 }
[[models]]
id = "meta.llama3-3-70b-instruct-v1:0"
output = { kind = "fixed", tokens = 1000 }
SIM

common="seed = 7
[target]
kind = \"sim\"
sim_profile = \"sim.toml\"
[load]
arrival = \"constant\"
max_in_flight = 64
duration = \"${level_s}s\"
[[workload]]
model = \"meta.llama3-3-70b-instruct-v1:0\"
input_tokens = 100
max_tokens = 10
[slo.criteria]
throttle_rate = \"<= 1%\"
"
printf '%s[sweep]\nvariable = "rate"\n[sweep.search]\nstart = 10\nmax = 80\nmax_levels = 20\n' "$common" >"$work/search.toml"
grid=$(python3 -c 'import math; print(", ".join(f"{10*1.05**k:.3f}" for k in range(0, 100) if 10*1.05**k <= 80))')
printf '%s[sweep]\nvariable = "rate"\nlevels = [%s]\n' "$common" "$grid" >"$work/grid.toml"

for kind in ${KINDS:-search grid}; do
  start=$(date +%s.%N)
  (cd "$work" && "$quarry" sweep "$kind.toml" --out "out-$kind" >/dev/null 2>&1) || true
  end=$(date +%s.%N)
  python3 - "$work/out-$kind/sweep.json" "$kind" "$start" "$end" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
r = doc["result"]
print(f"{sys.argv[2]:>6}: {len(doc['levels']):>2} levels, {float(sys.argv[4]) - float(sys.argv[3]):6.1f} s wall, "
      f"feasible_max {r['feasible_max']}, infeasible_min {r['infeasible_min']}, ended {doc['ended']}")
PY
done
