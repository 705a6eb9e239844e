"""The Responses API with the official openai Python SDK, through Envoy and
stellwerk, served by a native Responses provider, by a chat model
(translated) and by an Anthropic-wire model (translated), with and without
streaming and tools; stored responses (previous_response_id) where the
provider keeps them and refused elsewhere; a secret denied; residency.

Usage: responses.py BASE_URL. Prints one JSON object with what the SDK saw;
the Go test (e2e/responses_test.go) asserts on it.
"""
import json
import sys

import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-client-key", max_retries=0)
SECRET = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"
out = {"sdk_version": openai.__version__, "by": {}}


def headers(raw):
    return {k: raw.headers.get("x-stellwerk-" + k) for k in ("model", "provider", "decision-id", "reason")}


def refused(call):
    try:
        call()
        return {"raised": None}
    except openai.APIStatusError as e:
        return {"raised": type(e).__name__, "status": e.status_code, "code": e.code, "message": e.message}


tools = [
    {"type": "function", "name": "get_weather", "description": "Current weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"type": "function", "name": "get_time", "description": "Local time",
     "parameters": {"type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC"]}}, "required": ["tz"]}},
]
schema = {"type": "json_schema", "name": "city", "strict": True,
          "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}

for model in ("gpt-native", "chat-us", "claude-eu"):
    r = {}
    raw = client.responses.with_raw_response.create(model=model, instructions="be brief", input="hello responses", metadata={"ticket": "T-1"})
    resp = raw.parse()
    routing = (resp.model_extra or {}).get("routing") or {}
    r["text"] = {"output_text": resp.output_text, "input_tokens": resp.usage.input_tokens, "output_tokens": resp.usage.output_tokens,
                 "headers": headers(raw), "routing_model": routing.get("model"), "routing_prompt_tokens": (routing.get("usage") or {}).get("prompt_tokens"),
                 "cost_eur": (routing.get("cost") or {}).get("eur"), "metadata": resp.metadata, "instructions": resp.instructions}
    resp = client.responses.create(model=model, input="Weather and time in Paris?", tools=tools)
    fcs = [o for o in resp.output if o.type == "function_call"]
    r["tools"] = [(o.name, json.loads(o.arguments)) for o in fcs]
    follow = [{"role": "user", "content": "Weather and time in Paris?"}] + [o.model_dump(exclude_none=True) for o in fcs] + [
        {"type": "function_call_output", "call_id": o.call_id, "output": "sunny"} for o in fcs]
    r["after_tools"] = client.responses.create(model=model, input=follow, tools=tools).output_text
    if model != "claude-eu":  # Anthropic has no JSON mode: the catalog says so and the request is refused
        r["json"] = json.loads(client.responses.create(model=model, input="I live in Lyon.", text={"format": schema}).output_text)
    with client.responses.stream(model=model, instructions="be brief", input="stream responses", metadata={"ticket": "T-2"}) as stream:
        types = []
        for event in stream:
            if event.type not in types:
                types.append(event.type)
        final = stream.get_final_response()
    r["stream"] = {"types": types, "output_text": final.output_text, "status": final.status,
                   "output_tokens": final.usage.output_tokens if final.usage else None, "metadata": final.metadata}
    with client.responses.stream(model=model, input="Weather and time in Paris?", tools=tools) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    r["stream_tools"] = [(o.name, json.loads(o.arguments)) for o in final.output if o.type == "function_call"]
    out["by"][model] = r

# Stored responses: the native provider that keeps them continues a
# conversation; every other model is refused, naming why.
first = client.responses.create(model="gpt-native", input="remember the word kiwi", store=True)
raw = client.responses.with_raw_response.create(model="auto", previous_response_id=first.id, input="which word?")
second = raw.parse()
out["stored"] = {"first_id": first.id, "headers": headers(raw), "output_text": second.output_text,
                 "input_tokens": second.usage.input_tokens, "first_input_tokens": first.usage.input_tokens}
with client.responses.stream(model="auto", previous_response_id=first.id, input="again?") as stream:
    for _ in stream:
        pass
    out["stored_stream"] = stream.get_final_response().output_text
out["stored_chat"] = refused(lambda: client.responses.create(model="chat-us", previous_response_id=first.id, input="x"))
out["stored_anthropic"] = refused(lambda: client.responses.create(model="claude-eu", previous_response_id=first.id, input="x"))
out["stored_not_kept"] = refused(lambda: client.responses.create(model="native-eu", previous_response_id=first.id, input="x"))
out["stored_eu"] = refused(lambda: client.responses.create(
    model="auto", previous_response_id=first.id, input="x", extra_body={"policy": {"residency": "eu"}}))

# The policy: a secret is denied whoever would serve it; residency holds.
out["secret"] = refused(lambda: client.responses.create(model="auto", input=SECRET))
out["secret_native"] = refused(lambda: client.responses.create(model="gpt-native", input=[
    {"role": "user", "content": [{"type": "input_text", "text": "keep this"}, {"type": "input_text", "text": SECRET}]}]))
out["secret_tool_output"] = refused(lambda: client.responses.create(model="gpt-native", input=[
    {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": SECRET}], tools=tools))
raw = client.responses.with_raw_response.create(model="auto", input="hallo", extra_body={"policy": {"residency": "eu"}})
resp = raw.parse()
out["eu"] = {"headers": headers(raw), "residency": ((resp.model_extra or {}).get("routing") or {}).get("residency"), "output_text": resp.output_text}
with client.responses.stream(model="auto", input="hallo stream", extra_body={"policy": {"residency": "eu"}}) as stream:
    for _ in stream:
        pass
    out["eu_stream"] = stream.get_final_response().output_text
print(json.dumps(out, separators=(",", ":")))
