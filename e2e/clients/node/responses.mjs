// The Responses API with the official openai npm package, through Envoy and
// stellwerk: what responses.py does, printing the same JSON object; the Go
// test (e2e/responses_test.go) asserts on it.
// Usage: node responses.mjs BASE_URL.
import OpenAI from "openai";

const [baseURL] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: "sk-client-key", maxRetries: 0 });
const SECRET = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE";
const out = { sdk_version: OpenAI.VERSION ?? null, by: {} };

const headers = (r) =>
  Object.fromEntries(["model", "provider", "decision-id", "reason"].map((k) => [k, r.headers.get("x-stellwerk-" + k)]));

async function refused(call) {
  try {
    await call();
    return { raised: null };
  } catch (e) {
    if (e instanceof OpenAI.APIError) return { raised: e.constructor.name, status: e.status, code: e.code, message: e.message };
    throw e;
  }
}

const tools = [
  { type: "function", name: "get_weather", description: "Current weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } },
  { type: "function", name: "get_time", description: "Local time",
    parameters: { type: "object", properties: { tz: { type: "string", enum: ["UTC"] } }, required: ["tz"] } },
];
const schema = { type: "json_schema", name: "city", strict: true,
  schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false } };

for (const model of ["gpt-native", "chat-us", "claude-eu"]) {
  const r = {};
  let { data: resp, response } = await client.responses.create({ model, instructions: "be brief", input: "hello responses", metadata: { ticket: "T-1" } }).withResponse();
  const routing = resp.routing ?? {};
  r.text = { output_text: resp.output_text, input_tokens: resp.usage.input_tokens, output_tokens: resp.usage.output_tokens,
    headers: headers(response), routing_model: routing.model ?? null, routing_prompt_tokens: routing.usage?.prompt_tokens ?? null,
    cost_eur: routing.cost?.eur ?? null, metadata: resp.metadata ?? null, instructions: resp.instructions ?? null };
  resp = await client.responses.create({ model, input: "Weather and time in Paris?", tools });
  const fcs = resp.output.filter((o) => o.type === "function_call");
  r.tools = fcs.map((o) => [o.name, JSON.parse(o.arguments)]);
  const follow = [{ role: "user", content: "Weather and time in Paris?" }, ...fcs,
    ...fcs.map((o) => ({ type: "function_call_output", call_id: o.call_id, output: "sunny" }))];
  r.after_tools = (await client.responses.create({ model, input: follow, tools })).output_text;
  if (model !== "claude-eu") {
    r.json = JSON.parse((await client.responses.create({ model, input: "I live in Lyon.", text: { format: schema } })).output_text);
  }
  let stream = client.responses.stream({ model, instructions: "be brief", input: "stream responses", metadata: { ticket: "T-2" } });
  const types = [];
  for await (const event of stream) if (!types.includes(event.type)) types.push(event.type);
  let final = await stream.finalResponse();
  r.stream = { types, output_text: final.output_text, status: final.status, output_tokens: final.usage?.output_tokens ?? null,
    metadata: final.metadata ?? null };
  stream = client.responses.stream({ model, input: "Weather and time in Paris?", tools });
  final = await stream.finalResponse();
  r.stream_tools = final.output.filter((o) => o.type === "function_call").map((o) => [o.name, JSON.parse(o.arguments)]);
  out.by[model] = r;
}

// Stored responses.
const first = await client.responses.create({ model: "gpt-native", input: "remember the word kiwi", store: true });
let { data: second, response } = await client.responses.create({ model: "auto", previous_response_id: first.id, input: "which word?" }).withResponse();
out.stored = { first_id: first.id, headers: headers(response), output_text: second.output_text,
  input_tokens: second.usage.input_tokens, first_input_tokens: first.usage.input_tokens };
const sstream = client.responses.stream({ model: "auto", previous_response_id: first.id, input: "again?" });
out.stored_stream = (await sstream.finalResponse()).output_text;
out.stored_chat = await refused(() => client.responses.create({ model: "chat-us", previous_response_id: first.id, input: "x" }));
out.stored_anthropic = await refused(() => client.responses.create({ model: "claude-eu", previous_response_id: first.id, input: "x" }));
out.stored_not_kept = await refused(() => client.responses.create({ model: "native-eu", previous_response_id: first.id, input: "x" }));
out.stored_eu = await refused(() => client.responses.create({ model: "auto", previous_response_id: first.id, input: "x", policy: { residency: "eu" } }));

// The policy.
out.secret = await refused(() => client.responses.create({ model: "auto", input: SECRET }));
out.secret_native = await refused(() => client.responses.create({ model: "gpt-native", input: [
  { role: "user", content: [{ type: "input_text", text: "keep this" }, { type: "input_text", text: SECRET }] }] }));
out.secret_tool_output = await refused(() => client.responses.create({ model: "gpt-native", tools, input: [
  { type: "function_call", call_id: "c1", name: "get_weather", arguments: "{}" },
  { type: "function_call_output", call_id: "c1", output: SECRET }] }));
let eu;
({ data: eu, response } = await client.responses.create({ model: "auto", input: "hallo", policy: { residency: "eu" } }).withResponse());
out.eu = { headers: headers(response), residency: eu.routing?.residency ?? null, output_text: eu.output_text };
const eustream = client.responses.stream({ model: "auto", input: "hallo stream", policy: { residency: "eu" } });
out.eu_stream = (await eustream.finalResponse()).output_text;
console.log(JSON.stringify(out));
