// Embeddings, legacy completions, parallel tool calls and n choices with the
// official openai npm package, through Envoy and stellwerk.
// Usage: node apis.mjs BASE_URL. Prints the JSON object apis.py prints; the
// Go test (e2e/apis_test.go) asserts on it.
import OpenAI from "openai";

const [baseURL] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: "sk-client-key", maxRetries: 0 });
const SECRET = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE";
const out = { sdk_version: OpenAI.VERSION ?? null };

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

// Embeddings: the SDK asks for base64 and decodes it into floats.
let { data: emb, response } = await client.embeddings
  .create({ model: "auto", input: ["hello", "world"], dimensions: 16 })
  .withResponse();
out.embeddings = {
  count: emb.data.length,
  dimensions: emb.data.map((d) => d.embedding.length),
  prompt_tokens: emb.usage.prompt_tokens,
  headers: headers(response),
  routing: emb.routing ?? null,
};
({ data: emb, response } = await client.embeddings
  .create({ model: "auto", input: "bonjour", encoding_format: "float", policy: { residency: "eu" } })
  .withResponse());
out.embeddings_eu = { dimensions: emb.data[0].embedding.length, headers: headers(response) };
out.embeddings_secret = await refused(() => client.embeddings.create({ model: "auto", input: ["fine", SECRET] }));

// Legacy completions, plain with two choices, and streamed.
let cmpl;
({ data: cmpl, response } = await client.completions
  .create({ model: "auto", prompt: "Say this is a test", max_tokens: 20, n: 2 })
  .withResponse());
out.completions = {
  texts: cmpl.choices.map((c) => c.text),
  completion_tokens: cmpl.usage.completion_tokens,
  headers: headers(response),
  routing: cmpl.routing ?? null,
};
let stream;
({ data: stream, response } = await client.completions
  .create({ model: "auto", prompt: "stream this prompt", stream: true, stream_options: { include_usage: true } })
  .withResponse());
let text = "", usage = null;
for await (const chunk of stream) {
  if (chunk.choices?.length) text += chunk.choices[0].text;
  if (chunk.usage) usage = chunk.usage.total_tokens;
}
out.completions_stream = { text, total_tokens: usage, headers: headers(response) };
({ data: cmpl, response } = await client.completions
  .create({ model: "auto", prompt: "hallo", policy: { residency: "eu" } })
  .withResponse());
out.completions_eu = { text: cmpl.choices[0].text, headers: headers(response) };
out.completions_secret = await refused(() => client.completions.create({ model: "auto", prompt: SECRET }));

// Chat with two tools offered (parallel calls) and n=2.
const tools = [
  { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } },
  { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { tz: { type: "string", enum: ["UTC", "CET"] } } } } },
];
const msgs = [{ role: "user", content: "Weather and time in Paris?" }];
let chat;
({ data: chat, response } = await client.chat.completions.create({ model: "auto", messages: msgs, tools, n: 2 }).withResponse());
const calls = (m) => (m.tool_calls ?? []).map((tc) => [tc.function.name, JSON.parse(tc.function.arguments)]);
out.chat_tools = {
  choices: chat.choices.map((c) => calls(c.message)),
  finish: chat.choices.map((c) => c.finish_reason),
  headers: headers(response),
  routing: chat.routing ?? null,
};
// The conversation goes on with the tools' results: the model answers in text.
const call = chat.choices[0].message;
const follow = [...msgs, call, ...call.tool_calls.map((tc) => ({
  role: "tool", tool_call_id: tc.id, content: tc.function.name === "get_weather" ? "sunny" : "12:00",
}))];
out.chat_after_tools = (await client.chat.completions.create({ model: "auto", messages: follow, tools })).choices[0].message.content;

// Streamed parallel tool calls, reassembled by the SDK's stream helper.
const runner = client.chat.completions.stream({ model: "auto", messages: msgs, tools });
const final = await runner.finalChatCompletion();
out.chat_tools_stream = calls(final.choices[0].message);
out.chat_secret = await refused(() => client.chat.completions.create({ model: "auto", messages: [{ role: "user", content: SECRET }], tools }));
// The Responses API, translated to chat completions (non-streaming).
let resp;
({ data: resp, response } = await client.responses.create({ model: "auto", instructions: "be brief", input: "hello responses" }).withResponse());
out.responses = { output_text: resp.output_text, input_tokens: resp.usage.input_tokens, headers: headers(response), routing: resp.routing ?? null };
const rtools = tools.map((t) => ({ type: "function", name: t.function.name, parameters: t.function.parameters }));
resp = await client.responses.create({ model: "auto", input: "Weather and time in Paris?", tools: rtools });
const fcs = resp.output.filter((o) => o.type === "function_call");
out.responses_tools = fcs.map((o) => [o.name, JSON.parse(o.arguments)]);
const rfollow = [{ role: "user", content: "Weather and time in Paris?" }, ...fcs,
  ...fcs.map((o) => ({ type: "function_call_output", call_id: o.call_id, output: "sunny" }))];
out.responses_after_tools = (await client.responses.create({ model: "auto", input: rfollow, tools: rtools })).output_text;
({ data: resp, response } = await client.responses.create({ model: "auto", input: "hallo", policy: { residency: "eu" } }).withResponse());
out.responses_eu = { output_text: resp.output_text, headers: headers(response) };
out.responses_secret = await refused(() => client.responses.create({ model: "auto", input: SECRET }));
// Streamed: the SDK's helper rebuilds the response from the typed events.
let rstream = client.responses.stream({ model: "auto", instructions: "be brief", input: "stream responses" });
const types = [];
for await (const event of rstream) if (!types.includes(event.type)) types.push(event.type);
let rfinal = await rstream.finalResponse();
out.responses_stream = { types, output_text: rfinal.output_text, status: rfinal.status, output_tokens: rfinal.usage?.output_tokens ?? null };
rstream = client.responses.stream({ model: "auto", input: "Weather and time in Paris?", tools: rtools });
rfinal = await rstream.finalResponse();
out.responses_stream_tools = rfinal.output.filter((o) => o.type === "function_call").map((o) => [o.name, JSON.parse(o.arguments)]);
out.model_endpoints = Object.fromEntries((await client.models.list()).data.map((m) => [m.id, m.endpoints ?? null]));
console.log(JSON.stringify(out));
