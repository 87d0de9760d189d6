#!/usr/bin/env python3
"""Writes a wrk Lua script that replays one SigV4-signed Bedrock request.

Usage: presign.py HOST:PORT OPERATION OUT.lua
The signature is valid for 5 minutes (SigV4 skew window) from now.
"""
import datetime, hashlib, hmac, sys, urllib.parse

host, op, out = sys.argv[1], sys.argv[2], sys.argv[3]
akid, secret = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
model = "meta.llama3-3-70b-instruct-v1:0"
body = '{"messages":[{"role":"user","content":[{"text":"Hello, tell me about quarries."}]}],"inferenceConfig":{"maxTokens":64}}'
path = "/model/" + urllib.parse.quote(model, safe="-._~") + "/" + op
now = datetime.datetime.now(datetime.timezone.utc)
amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
canonical_uri = urllib.parse.quote(path, safe="/~")
signed = "content-type;host;x-amz-date"
creq = "\n".join(["POST", canonical_uri, "", "content-type:application/json", "host:" + host,
                  "x-amz-date:" + amz_date, "", signed, hashlib.sha256(body.encode()).hexdigest()])
scope = f"{day}/us-east-1/bedrock/aws4_request"
sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
k = ("AWS4" + secret).encode()
for part in (day, "us-east-1", "bedrock", "aws4_request"):
    k = hmac.new(k, part.encode(), hashlib.sha256).digest()
sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
auth = f"AWS4-HMAC-SHA256 Credential={akid}/{scope}, SignedHeaders={signed}, Signature={sig}"
with open(out, "w") as f:
    f.write(f'''wrk.method = "POST"
wrk.path = "{path}"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Host"] = "{host}"
wrk.headers["X-Amz-Date"] = "{amz_date}"
wrk.headers["Authorization"] = "{auth}"
''')
