"""Embeddings, legacy completions, parallel tool calls and n choices with the
official openai Python SDK, through Envoy and stellwerk.

Usage: apis.py BASE_URL. Only base_url changes compared with talking to
OpenAI directly. Prints one JSON object with what the SDK saw; the Go test
(e2e/apis_test.go) asserts on it.
"""
import json
import sys

import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-client-key", max_retries=0)
SECRET = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"
out = {"sdk_version": openai.__version__}


def headers(raw):
    return {k: raw.headers.get("x-stellwerk-" + k) for k in ("model", "provider", "decision-id", "reason")}


def refused(call):
    try:
        call()
        return {"raised": None}
    except openai.APIStatusError as e:
        return {"raised": type(e).__name__, "status": e.status_code, "code": e.code, "message": e.message}


# Embeddings: the SDK asks for base64 and decodes it into floats.
raw = client.embeddings.with_raw_response.create(model="auto", input=["hello", "world"], dimensions=16)
emb = raw.parse()
out["embeddings"] = {
    "count": len(emb.data),
    "dimensions": [len(d.embedding) for d in emb.data],
    "prompt_tokens": emb.usage.prompt_tokens,
    "headers": headers(raw),
    "routing": (emb.model_extra or {}).get("routing"),
}
raw = client.embeddings.with_raw_response.create(
    model="auto", input="bonjour", encoding_format="float", extra_body={"policy": {"residency": "eu"}})
emb = raw.parse()
out["embeddings_eu"] = {"dimensions": len(emb.data[0].embedding), "headers": headers(raw)}
out["embeddings_secret"] = refused(lambda: client.embeddings.create(model="auto", input=["fine", SECRET]))

# Legacy completions, plain with two choices, and streamed.
raw = client.completions.with_raw_response.create(model="auto", prompt="Say this is a test", max_tokens=20, n=2)
cmpl = raw.parse()
out["completions"] = {
    "texts": [c.text for c in cmpl.choices],
    "completion_tokens": cmpl.usage.completion_tokens,
    "headers": headers(raw),
    "routing": (cmpl.model_extra or {}).get("routing"),
}
text, usage = "", None
with client.completions.with_streaming_response.create(
        model="auto", prompt="stream this prompt", stream=True, stream_options={"include_usage": True}) as resp:
    stream_headers = headers(resp)
    for chunk in resp.parse():
        if chunk.choices:
            text += chunk.choices[0].text
        if chunk.usage:
            usage = chunk.usage.total_tokens
out["completions_stream"] = {"text": text, "total_tokens": usage, "headers": stream_headers}
raw = client.completions.with_raw_response.create(
    model="auto", prompt="hallo", extra_body={"policy": {"residency": "eu"}})
out["completions_eu"] = {"text": raw.parse().choices[0].text, "headers": headers(raw)}
out["completions_secret"] = refused(lambda: client.completions.create(model="auto", prompt=SECRET))

# Chat with two tools offered (parallel calls) and n=2.
tools = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}}}}},
]
msgs = [{"role": "user", "content": "Weather and time in Paris?"}]
raw = client.chat.completions.with_raw_response.create(model="auto", messages=msgs, tools=tools, n=2)
chat = raw.parse()
out["chat_tools"] = {
    "choices": [[(tc.function.name, json.loads(tc.function.arguments)) for tc in c.message.tool_calls or []]
                for c in chat.choices],
    "finish": [c.finish_reason for c in chat.choices],
    "headers": headers(raw),
    "routing": (chat.model_extra or {}).get("routing"),
}
# The conversation goes on with the tools' results: the model answers in text.
call = chat.choices[0].message
follow = msgs + [call.model_dump(exclude_none=True)] + [
    {"role": "tool", "tool_call_id": tc.id, "content": "sunny" if tc.function.name == "get_weather" else "12:00"}
    for tc in call.tool_calls]
out["chat_after_tools"] = client.chat.completions.create(model="auto", messages=follow, tools=tools).choices[0].message.content

# Streamed parallel tool calls, reassembled as the SDK's users do.
calls = {}
with client.chat.completions.stream(model="auto", messages=msgs, tools=tools) as stream:
    for _ in stream:
        pass
    final = stream.get_final_completion()
out["chat_tools_stream"] = [(tc.function.name, json.loads(tc.function.arguments)) for tc in final.choices[0].message.tool_calls]
out["chat_secret"] = refused(lambda: client.chat.completions.create(
    model="auto", messages=[{"role": "user", "content": SECRET}], tools=tools))
# The Responses API, translated to chat completions (non-streaming).
raw = client.responses.with_raw_response.create(model="auto", instructions="be brief", input="hello responses")
resp = raw.parse()
out["responses"] = {"output_text": resp.output_text, "input_tokens": resp.usage.input_tokens, "headers": headers(raw),
                    "routing": (resp.model_extra or {}).get("routing")}
rtools = [{"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"]} for t in tools]
resp = client.responses.create(model="auto", input="Weather and time in Paris?", tools=rtools)
fcs = [o for o in resp.output if o.type == "function_call"]
out["responses_tools"] = [(o.name, json.loads(o.arguments)) for o in fcs]
follow = [{"role": "user", "content": "Weather and time in Paris?"}] + [o.model_dump(exclude_none=True) for o in fcs] + [
    {"type": "function_call_output", "call_id": o.call_id, "output": "sunny"} for o in fcs]
out["responses_after_tools"] = client.responses.create(model="auto", input=follow, tools=rtools).output_text
raw = client.responses.with_raw_response.create(model="auto", input="hallo", extra_body={"policy": {"residency": "eu"}})
out["responses_eu"] = {"output_text": raw.parse().output_text, "headers": headers(raw)}
out["responses_secret"] = refused(lambda: client.responses.create(model="auto", input=SECRET))
# Streamed: the SDK's helper checks the typed events' order and rebuilds the response.
with client.responses.stream(model="auto", instructions="be brief", input="stream responses") as stream:
    types = []
    for event in stream:
        if event.type not in types:
            types.append(event.type)
    final = stream.get_final_response()
out["responses_stream"] = {"types": types, "output_text": final.output_text, "status": final.status,
                           "output_tokens": final.usage.output_tokens if final.usage else None}
with client.responses.stream(model="auto", input="Weather and time in Paris?", tools=rtools) as stream:
    for _ in stream:
        pass
    final = stream.get_final_response()
out["responses_stream_tools"] = [(o.name, json.loads(o.arguments)) for o in final.output if o.type == "function_call"]
out["model_endpoints"] = {m.id: (m.model_extra or {}).get("endpoints") for m in client.models.list()}
print(json.dumps(out, separators=(",", ":")))
