"""List and retrieve models with the official openai Python SDK as one key.

Usage: models.py BASE_URL API_KEY HIDDEN_MODEL. Prints one JSON object with
what the SDK saw; e2e/security_admin_test.go asserts on it.
"""
import json
import sys

import openai

base_url, api_key, hidden = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0)
out = {"models": [m.id for m in client.models.list()]}


def refused(call):
    try:
        call()
        return {"raised": None}
    except openai.APIStatusError as e:
        return {"raised": type(e).__name__, "status": e.status_code, "code": e.code, "message": e.message}


out["retrieve_hidden"] = refused(lambda: client.models.retrieve(hidden))
out["chat_hidden"] = refused(lambda: client.chat.completions.create(
    model=hidden, messages=[{"role": "user", "content": "x"}]))
print(json.dumps(out))
