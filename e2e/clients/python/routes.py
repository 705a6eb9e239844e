"""Use a named route with the official openai Python SDK (docs/routes.md).

Usage: routes.py BASE_URL. The model field names the route; the app's
metadata (the SDK's `metadata` parameter, or the x-stellwerk-metadata header
for clients that cannot send it) feeds the route's conditions. Prints one
JSON object per case with what the SDK saw; e2e/routes_test.go asserts on it.
"""
import json
import sys

import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-client-key", max_retries=0)
messages = [{"role": "user", "content": "my order has not arrived"}]


def seen(raw):
    completion = raw.parse()
    routing = (completion.model_extra or {}).get("routing", {})
    return {
        "model": completion.model,
        "x_stellwerk_model": raw.headers.get("x-stellwerk-model"),
        "x_stellwerk_route": raw.headers.get("x-stellwerk-route"),
        "reason": raw.headers.get("x-stellwerk-reason"),
        "route": routing.get("route"),
    }


out = {}
out["paid"] = seen(client.chat.completions.with_raw_response.create(
    model="route:support", messages=messages, metadata={"plan": "paid"}))
out["free"] = seen(client.chat.completions.with_raw_response.create(
    model="route:support", messages=messages, metadata={"plan": "free"}))
out["paid_header"] = seen(client.chat.completions.with_raw_response.create(
    model="route:support@1", messages=messages, extra_headers={"x-stellwerk-metadata": json.dumps({"plan": "paid"})}))
# The policy excludes the paid branch's first model: its chain's next serves.
out["paid_eu_only"] = seen(client.chat.completions.with_raw_response.create(
    model="route:support", messages=messages, metadata={"plan": "paid"}, extra_body={"policy": {"residency": "eu"}}))
try:
    client.chat.completions.create(model="route:nope", messages=messages)
    out["unknown"] = {"raised": None}
except openai.APIStatusError as e:
    out["unknown"] = {"raised": type(e).__name__, "status": e.status_code, "code": e.code}
print(json.dumps(out))
