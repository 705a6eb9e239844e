// Drive stellwerk through Envoy with the official openai npm package.
// Usage: node smoke.mjs BASE_URL MODEL. Prints one JSON object with what the
// SDK saw; the Go test (e2e/sdk_test.go) asserts on it.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: "sk-client-key", maxRetries: 0 });
const out = {};

const { data: completion, response } = await client.chat.completions
  .create({ model, messages: [{ role: "user", content: "hello from node" }] })
  .withResponse();
out.plain = {
  content: completion.choices[0].message.content,
  model: completion.model,
  total_tokens: completion.usage.total_tokens,
  x_stellwerk_model: response.headers.get("x-stellwerk-model"),
  x_stellwerk_provider: response.headers.get("x-stellwerk-provider"),
  x_stellwerk_decision_id: response.headers.get("x-stellwerk-decision-id"),
  routing_decision_id: completion.routing?.decision_id ?? null,
};

const { data: stream, response: streamResponse } = await client.chat.completions
  .create({
    model,
    messages: [{ role: "user", content: "stream from node" }],
    stream: true,
    stream_options: { include_usage: true },
  })
  .withResponse();
let text = "", chunks = 0, usage = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.choices.length && chunk.choices[0].delta.content) text += chunk.choices[0].delta.content;
  if (chunk.usage) usage = chunk.usage.total_tokens;
}
out.stream = { content: text, chunks, total_tokens: usage, x_stellwerk_model: streamResponse.headers.get("x-stellwerk-model") };

out.models = [];
for await (const m of client.models.list()) out.models.push(m.id);

try {
  await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] });
  out.unknown_model = { raised: null };
} catch (e) {
  out.unknown_model = { raised: e.constructor.name, status: e.status, code: e.code, message: e.message };
}

console.log(JSON.stringify(out));
