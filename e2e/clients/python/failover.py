"""Failover as the official openai Python SDK sees it (e2e/failover_test.go).

Usage: failover.py BASE_URL SCENARIO [JSON_EXTRA_BODY]. SCENARIO is one of
  plain   a non-streaming completion
  stream  a streamed completion with stream_options.include_usage
Prints one JSON object: what the SDK returned, or the error it raised.
"""
import json
import sys
import time

import openai

base_url, scenario = sys.argv[1], sys.argv[2]
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-client-key", max_retries=0)
messages = [{"role": "user", "content": "tell me about failover"}]
out = {}
text = ""
start = time.monotonic()
try:
    if scenario == "plain":
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages, extra_body=extra)
        c = raw.parse()
        out["content"] = c.choices[0].message.content
        out["usage"] = {"prompt_tokens": c.usage.prompt_tokens, "completion_tokens": c.usage.completion_tokens}
        out["routing"] = (c.model_extra or {}).get("routing")
    elif scenario == "stream":
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=messages, stream=True, stream_options={"include_usage": True}, extra_body=extra)
        usage, chunks = None, 0
        for chunk in raw.parse():
            chunks += 1
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage:
                usage = {"prompt_tokens": chunk.usage.prompt_tokens, "completion_tokens": chunk.usage.completion_tokens}
        out["content"], out["usage"], out["chunks"] = text, usage, chunks
    else:
        raise SystemExit("unknown scenario " + scenario)
    out["provider"] = raw.headers.get("x-stellwerk-provider")
    out["model"] = raw.headers.get("x-stellwerk-model")
    out["attempts"] = raw.headers.get("x-stellwerk-attempts")
    out["decision_id"] = raw.headers.get("x-stellwerk-decision-id")
except openai.APIStatusError as e:
    body = e.body if isinstance(e.body, dict) else {}
    out["error"] = {"class": type(e).__name__, "status": e.status_code, "code": body.get("code"), "message": body.get("message")}
except openai.APIError as e:  # an error event in the stream
    out["error"] = {"class": type(e).__name__, "message": e.message}
except Exception as e:  # the connection broke: what the SDK raises for a reset
    out["error"] = {"class": type(e).__name__, "message": str(e)}
if "error" in out:
    out["content"] = text  # what had arrived before the error
out["elapsed_s"] = round(time.monotonic() - start, 3)
print(json.dumps(out))
