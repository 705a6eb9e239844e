"""The Anthropic Messages API with the official anthropic Python SDK, through
Envoy and stellwerk: messages.create and messages.stream, with tools, on a
pinned model; messages.count_tokens.

Usage: messages.py BASE_URL MODEL. Only base_url changes compared with
talking to Anthropic directly; the stellwerk key goes in x-api-key as the SDK
sends it. Prints one JSON object with what the SDK saw; the Go test
(e2e/messages_test.go) asserts on it.
"""
import json
import sys

import anthropic

base_url, model = sys.argv[1], sys.argv[2]
client = anthropic.Anthropic(base_url=base_url, api_key="sk-app", max_retries=0)
SECRET = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"
TOOLS = [{
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]
out = {"sdk_version": anthropic.__version__}


def headers(h):
    return {k: h.get("x-stellwerk-" + k) for k in ("model", "provider", "decision-id", "reason")}


def blocks(msg):
    return [b.model_dump(exclude_none=True) for b in msg.content]


def refused(call):
    try:
        call()
        return {"raised": None}
    except anthropic.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"raised": type(e).__name__, "status": e.status_code,
                "type": (body.get("error") or {}).get("type"), "code": (body.get("error") or {}).get("code"),
                "message": (body.get("error") or {}).get("message")}


# messages.create with a tool offered: the model asks for it.
ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
raw = client.messages.with_raw_response.create(model=model, max_tokens=200, system="You are brief.", tools=TOOLS, messages=ask)
msg = raw.parse()
out["tool_use"] = {
    "type": msg.type, "role": msg.role, "stop_reason": msg.stop_reason, "blocks": blocks(msg),
    "input_tokens": msg.usage.input_tokens, "output_tokens": msg.usage.output_tokens,
    "headers": headers(raw.headers), "routing": raw.http_response.json().get("routing"),
}

# The tool's result sent back: the model answers in text.
use = next(b for b in msg.content if b.type == "tool_use")
followup = ask + [
    {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 degrees"}]},
]
msg = client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=followup)
out["answer"] = {"stop_reason": msg.stop_reason, "text": "".join(b.text for b in msg.content if b.type == "text")}

# messages.stream, text: the helper rebuilds the message from the events.
with client.messages.stream(model=model, max_tokens=200, messages=[{"role": "user", "content": "stream a short answer"}]) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
    out["stream"] = {"text": text, "final_text": "".join(b.text for b in final.content if b.type == "text"),
                     "stop_reason": final.stop_reason, "output_tokens": final.usage.output_tokens,
                     "headers": headers(stream.response.headers)}

# messages.stream with a tool: tool_use rebuilt from input_json_delta.
with client.messages.stream(model=model, max_tokens=200, tools=TOOLS, messages=ask) as stream:
    final = stream.get_final_message()
    out["stream_tool_use"] = {"stop_reason": final.stop_reason, "blocks": blocks(final)}

# Parallel tool calls streamed, from a provider that interleaves them
# (more arguments for the first call after the second began): every
# tool_use block has its whole input.
TIME = {"name": "get_time", "description": "The time in a zone",
        "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}
with client.messages.stream(model=model, max_tokens=200, tools=TOOLS + [TIME], messages=ask,
                            extra_headers={"x-mock-interleave": "1"}) as stream:
    final = stream.get_final_message()
    out["stream_parallel"] = {"stop_reason": final.stop_reason, "blocks": blocks(final)}

# The policy denies a secret, in the Anthropic error shape the SDK reads.
out["secret"] = refused(lambda: client.messages.create(
    model=model, max_tokens=50, messages=[{"role": "user", "content": "why does S3 refuse " + SECRET}]))
out["secret_stream"] = refused(lambda: client.messages.stream(
    model=model, max_tokens=50, messages=[{"role": "user", "content": SECRET}]).__enter__())
# Extended thinking: an Anthropic-wire model's, refused for another; and a
# key stellwerk does not know.
out["thinking"] = refused(lambda: client.messages.create(
    model=model, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024}, messages=ask))
out["bad_key"] = refused(lambda: anthropic.Anthropic(base_url=base_url, api_key="sk-wrong", max_retries=0).messages.create(
    model=model, max_tokens=50, messages=ask))
# The same key as a bearer token (auth_token) works too.
bearer = anthropic.Anthropic(base_url=base_url, auth_token="sk-app", api_key=None, max_retries=0)
raw = bearer.messages.with_raw_response.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
out["bearer"] = {"stop_reason": raw.parse().stop_reason, "headers": headers(raw.headers), "request_id": raw.parse()._request_id}

# Residency: the EU workspace's key gets an EU model for model auto.
eu = anthropic.Anthropic(base_url=base_url, api_key="sk-eu", max_retries=0)
raw = eu.messages.with_raw_response.create(model="auto", max_tokens=50, messages=[{"role": "user", "content": "bonjour"}])
out["eu"] = {"headers": headers(raw.headers), "residency": (raw.http_response.json().get("routing") or {}).get("residency")}
with eu.messages.stream(model="auto", max_tokens=50, tools=TOOLS, messages=ask) as stream:
    final = stream.get_final_message()
    out["eu_stream"] = {"headers": headers(stream.response.headers), "stop_reason": final.stop_reason}

# messages.count_tokens (Claude Code asks it every turn): stellwerk's own
# estimate, no provider asked; the beta path (?beta=true) too.
small = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hi"}])
raw = client.messages.with_raw_response.count_tokens(model=model, system="You are brief.", tools=TOOLS, messages=followup)
beta = client.beta.messages.count_tokens(model=model, system="You are brief.", tools=TOOLS, messages=followup)
out["count"] = {"small": small.input_tokens, "big": raw.parse().input_tokens, "beta": beta.input_tokens,
                "request_id": raw.parse()._request_id}
out["count_unknown_model"] = refused(lambda: client.messages.count_tokens(model="no-such-model", messages=ask))
out["count_typo"] = refused(lambda: client.messages.count_tokens(model=model, messages=ask, extra_body={"systme": "x"}))
out["count_bad_key"] = refused(lambda: anthropic.Anthropic(base_url=base_url, api_key="sk-wrong", max_retries=0).messages.count_tokens(
    model=model, messages=ask))

print(json.dumps(out))
