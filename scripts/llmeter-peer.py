#!/usr/bin/env python3
"""Runs AWS's llmeter (PyPI) against a running quarry-sim, ConverseStream.

The peer side of BENCHMARKS.md's "Peers on one simulator": `scripts/peers`
starts the simulator and calls this under `/usr/bin/time` for the CPU. It
prints one JSON line: requests, ok requests, and each ok request's TTFT
minus the simulator's configured TTFT (what llmeter measured, with
`time.perf_counter` around boto3's `converse_stream`), as quantiles in ms.

    llmeter-peer.py --url http://127.0.0.1:PORT --body req/body.json \
        --model amazon.titan-text-express-v1 --clients 16 --duration 20 --ttft-ms 200
"""

import argparse
import asyncio
import json
import math

import boto3
from botocore.config import Config
from llmeter.endpoints.bedrock import BedrockConverseStream
from llmeter.runner import Runner

# The documentation example keys the simulator's benchmark account accepts.
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def quantile(sorted_values, q):
    """The nearest-rank quantile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="the Converse JSON body loadbench wrote")
    parser.add_argument("--model", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--ttft-ms", type=float, required=True, help="the simulator's configured TTFT")
    args = parser.parse_args()

    with open(args.body, encoding="utf-8") as f:
        body = json.load(f)
    payload = {"messages": body["messages"], "inferenceConfig": body["inferenceConfig"]}
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=args.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(max_pool_connections=args.clients + 5, retries={"max_attempts": 1}),
    )
    endpoint = BedrockConverseStream(
        model_id=args.model, region="us-east-1", bedrock_boto3_client=client, max_attempts=1
    )
    runner = Runner(endpoint, output_path=None, disable_per_client_progress_bar=True)
    result = asyncio.run(
        runner.run(payload=payload, clients=args.clients, run_duration=args.duration)
    )
    responses = result.responses
    ok = [r for r in responses if r.error is None and r.time_to_first_token is not None]
    errors = sorted({str(r.error)[:120] for r in responses if r.error is not None})
    ttft_err = sorted(r.time_to_first_token * 1e3 - args.ttft_ms for r in ok)
    print(
        json.dumps(
            {
                "tool": "llmeter",
                "clients": args.clients,
                "requests": len(responses),
                "ok": len(ok),
                "errors": errors[:5],
                "ttft_error_p50_ms": quantile(ttft_err, 0.5),
                "ttft_error_p99_ms": quantile(ttft_err, 0.99),
                "ttft_error_max_ms": ttft_err[-1] if ttft_err else None,
                "ttft_error_min_ms": ttft_err[0] if ttft_err else None,
            }
        )
    )


if __name__ == "__main__":
    main()
