"""Drive stellwerk through Envoy with the official openai Python SDK.

Usage: smoke.py BASE_URL MODEL. Only base_url changes compared with talking to
OpenAI directly. Prints one JSON object with what the SDK saw; the Go test
(e2e/sdk_test.go) asserts on it.
"""
import json
import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-client-key", max_retries=0)
out = {"sdk_version": openai.__version__}

# Non-streaming, with the raw response to read stellwerk's headers.
raw = client.chat.completions.with_raw_response.create(
    model=model, messages=[{"role": "user", "content": "hello from python"}]
)
completion = raw.parse()
out["plain"] = {
    "content": completion.choices[0].message.content,
    "model": completion.model,
    "total_tokens": completion.usage.total_tokens,
    "x_stellwerk_model": raw.headers.get("x-stellwerk-model"),
    "x_stellwerk_provider": raw.headers.get("x-stellwerk-provider"),
    "x_stellwerk_decision_id": raw.headers.get("x-stellwerk-decision-id"),
    # Unknown response fields are kept by the SDK: the routing object.
    "routing_decision_id": (completion.model_extra or {}).get("routing", {}).get("decision_id"),
}

# Streaming.
with client.chat.completions.with_streaming_response.create(
    model=model,
    messages=[{"role": "user", "content": "stream from python"}],
    stream=True,
    stream_options={"include_usage": True},
) as resp:
    text, chunks, usage = "", 0, None
    for chunk in resp.parse():
        chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage.total_tokens
    out["stream"] = {
        "content": text,
        "chunks": chunks,
        "total_tokens": usage,
        "x_stellwerk_model": resp.headers.get("x-stellwerk-model"),
    }

out["models"] = [m.id for m in client.models.list()]

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    out["unknown_model"] = {"raised": None}
except openai.APIStatusError as e:
    out["unknown_model"] = {"raised": type(e).__name__, "status": e.status_code, "code": e.code, "message": e.message}

print(json.dumps(out))
