"""An A/B test through a split route with the official openai Python SDK.

Usage: experiment.py BASE_URL USERS STREAM_USER [EXTRA_BODY_JSON]. Sends one
chat request per user (u0 … u{USERS-1}; the body's `user` keeps each on one
arm of a `sticky: user` split), then one stream as STREAM_USER (none when
""), and prints what the SDK saw:
per request the status, the arm (x-stellwerk-route-arm), the model, the
decision id and the error code; for the stream its arm and model headers.
e2e/routes_test.go asserts on it.
"""
import json
import sys

import openai

base_url, users, stream_user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-client-key", max_retries=0)
messages = [{"role": "user", "content": "which variant am I?"}]

out = {"requests": []}
for i in range(users):
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="route:ab", messages=messages, user=f"u{i}", extra_body=extra)
        raw.parse()
        h, status, code = raw.headers, raw.status_code, None
    except openai.APIStatusError as e:
        h, status, code = e.response.headers, e.status_code, e.code
    out["requests"].append({
        "user": f"u{i}", "status": status, "code": code,
        "arm": h.get("x-stellwerk-route-arm"), "model": h.get("x-stellwerk-model"),
        "decision_id": h.get("x-stellwerk-decision-id"),
    })

# A stream carries no routing object: the arm is in its headers.
if stream_user:
    with client.chat.completions.with_streaming_response.create(
            model="route:ab", messages=messages, user=stream_user, stream=True) as resp:
        lines = sum(1 for line in resp.iter_lines() if line)
        out["stream"] = {"status": resp.status_code, "arm": resp.headers.get("x-stellwerk-route-arm"),
                         "model": resp.headers.get("x-stellwerk-model"), "lines": lines}
print(json.dumps(out))
