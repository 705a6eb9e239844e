"""Budgets and rate limits as the official openai Python SDK sees them
(e2e/budget_test.go).

Usage: limits.py BASE_URL API_KEY N. Sends N non-streaming completions one
after the other and prints one JSON object: for each, the rate-limit
headers of a success, or the error the SDK raised with its Retry-After.
"""
import json
import sys

import openai

base_url, api_key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0)
out = []
for _ in range(n):
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", max_tokens=10, messages=[{"role": "user", "content": "hello there"}])
        raw.parse()
        out.append({"status": raw.status_code,
                    "headers": {k: v for k, v in raw.headers.items() if k.startswith("x-ratelimit-") or k == "x-stellwerk-budget-warning"}})
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        out.append({"status": e.status_code, "class": type(e).__name__, "code": body.get("code"), "message": body.get("message"),
                    "retry_after": e.response.headers.get("retry-after"),
                    "headers": {k: v for k, v in e.response.headers.items() if k.startswith("x-ratelimit-")}})
print(json.dumps(out))
