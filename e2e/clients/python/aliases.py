"""Use a model by one of its aliases with the official openai Python SDK.

Usage: aliases.py BASE_URL API_KEY ALIAS. Prints one JSON object with what
the SDK saw; e2e/aliases_test.go asserts on it.
"""
import json
import sys

import openai

base_url, api_key, alias = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0)
raw = client.chat.completions.with_raw_response.create(
    model=alias, messages=[{"role": "user", "content": "Say hello."}])
chat = raw.parse()
routing = (chat.model_extra or {}).get("routing", {})
entry = client.models.retrieve(alias)
print(json.dumps({
    "served": raw.headers.get("x-stellwerk-model"),
    "decision_id": raw.headers.get("x-stellwerk-decision-id"),
    "routing_alias": routing.get("alias"),
    "reason": routing.get("reason"),
    "retrieved": {"id": entry.id, "alias_of": (entry.model_extra or {}).get("alias_of")},
    "listed": [m.id for m in client.models.list()],
}))
