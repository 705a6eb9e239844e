"""Vote on answers with the official openai Python SDK through Envoy.

Usage: feedback.py BASE_URL OWN_KEY OTHER_KEY. The SDK has no feedback method; its generic
client.post sends POST /v1/feedback with the same key, base_url and error handling as a chat
request. Prints one JSON object with what the SDK saw; e2e/feedback_vote_test.go asserts on it.
"""
import json
import sys

import openai

base_url, own_key, other_key = sys.argv[1], sys.argv[2], sys.argv[3]
own = openai.OpenAI(base_url=base_url + "/v1", api_key=own_key, max_retries=0)
other = openai.OpenAI(base_url=base_url + "/v1", api_key=other_key, max_retries=0)
out = {}


def chat(client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hello, please answer"}]
    )
    raw.parse()
    return raw.headers.get("x-stellwerk-decision-id"), raw.headers.get("x-stellwerk-model")


def vote(client, body):
    try:
        got = client.post("/feedback", body=body, cast_to=object)
        return {"status": 201, "body": got}
    except openai.APIStatusError as e:
        # The SDK's body of an error is the OpenAI error object inside "error".
        return {"status": e.status_code, "error": e.body if isinstance(e.body, dict) else {"raw": str(e.body)}}


mine, my_model = chat(own)
theirs, _ = chat(other)
out["decision"], out["model"], out["other_decision"] = mine, my_model, theirs
out["own"] = vote(own, {"decision_id": mine, "good": True, "metric": "resolved", "value": 1,
                        "comment": "solved it; my key is sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"})
out["other_workspace"] = vote(own, {"decision_id": theirs, "good": False})
out["unknown"] = vote(own, {"decision_id": "does-not-exist", "good": False})
out["wrong_model"] = vote(own, {"decision_id": mine, "model": "no-such-model", "good": False})
print(json.dumps(out))
