"""One chat completion through stellwerk as the official openai Python SDK
makes it, against a provider that misbehaves (e2e/hostile_test.go).

Usage: hostile.py BASE_URL MODEL MAX_RETRIES. Prints one JSON object: the
status and, for an error, its class and code.
"""
import json
import sys

import openai

base_url, model, retries = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-client-key", max_retries=retries, timeout=30)
out = {}
try:
    c = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
    out["status"] = 200
    out["content"] = c.choices[0].message.content
except openai.APIStatusError as e:
    body = e.body if isinstance(e.body, dict) else {}
    out["status"] = e.status_code
    out["class"] = type(e).__name__
    out["code"] = body.get("code")
except Exception as e:  # the connection broke, or the body did not decode
    out["class"] = type(e).__name__
    out["message"] = str(e)
print(json.dumps(out))
