"""Budgets and rate limits that narrow a request's plan, as the official
openai Python SDK sees them (e2e/budget_test.go, TestLimitsNarrowThePlan).

Usage: plan_limits.py BASE_URL API_KEY MODEL MAX_TOKENS WORDS. Sends one
non-streaming completion of WORDS words (MAX_TOKENS 0: none) and prints one
JSON object: the stellwerk headers and routing reason of a success, or the
error the SDK raised.
"""
import json
import sys

import openai

base_url, api_key, model, max_tokens, words = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
client = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0)
kw = {"max_tokens": max_tokens} if max_tokens > 0 else {}
content = "hello there" if words == 0 else " ".join(["lorem"] * words)
try:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **kw)
    c = raw.parse()
    routing = (c.model_extra or {}).get("routing") or {}
    print(json.dumps({"status": raw.status_code, "model": raw.headers.get("x-stellwerk-model"),
                      "reason": raw.headers.get("x-stellwerk-reason"),
                      "fallback_from": raw.headers.get("x-stellwerk-fallback-from"),
                      "routing_reason": routing.get("reason")}))
except openai.APIStatusError as e:
    body = e.body if isinstance(e.body, dict) else {}
    print(json.dumps({"status": e.status_code, "class": type(e).__name__, "code": body.get("code"),
                      "message": body.get("message"), "retry_after": e.response.headers.get("retry-after"),
                      "should_retry": e.response.headers.get("x-should-retry")}))
