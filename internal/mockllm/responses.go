package mockllm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// The OpenAI Responses API (POST …/responses), served natively: a response
// object whose output holds a message or, when function tools are offered,
// function_call items (one, or one per tool in parallel); text.format
// json_object / json_schema answered with JSON text; streaming as typed
// events (response.created … response.completed with usage); and stored
// responses, kept in memory only when the provider is told to store
// (StoreResponses), so previous_response_id works against it and is
// refused otherwise, as by a provider with zero data retention.

// storedResponse is what a storing provider keeps of a response: the
// conversation it ends (input items and the output), for the next
// request's previous_response_id.
type storedResponse struct {
	items []json.RawMessage
}

// StoreResponses makes the provider keep its Responses API answers (in
// memory) and accept previous_response_id naming one of them; without it
// previous_response_id is refused with a 400.
func (p *Provider) StoreResponses(on bool) {
	p.mu.Lock()
	p.storing = on
	if on && p.stored == nil {
		p.stored = map[string]storedResponse{}
	}
	p.mu.Unlock()
}

// responseItems is a request's input as items: a string is one user
// message.
func responseItems(input gjson.Result) []json.RawMessage {
	if input.Type == gjson.String {
		b, _ := json.Marshal(map[string]any{"type": "message", "role": "user", "content": input.Str})
		return []json.RawMessage{b}
	}
	var out []json.RawMessage
	input.ForEach(func(_, it gjson.Result) bool {
		out = append(out, json.RawMessage(it.Raw))
		return true
	})
	return out
}

// itemText is a message item's text (a string, or its input_text and
// output_text parts).
func itemText(c gjson.Result) string {
	if c.Type == gjson.String {
		return c.Str
	}
	var parts []string
	c.ForEach(func(_, pt gjson.Result) bool {
		if t := pt.Get("type").Str; t == "input_text" || t == "output_text" {
			parts = append(parts, pt.Get("text").Str)
		}
		return true
	})
	return strings.Join(parts, " ")
}

// responses answers POST …/responses.
func (p *Provider) responses(w http.ResponseWriter, r *http.Request, b Behavior, req gjson.Result, body []byte, rec *Recorded) {
	var history []json.RawMessage
	if prev := req.Get("previous_response_id"); prev.Type == gjson.String && prev.Str != "" {
		p.mu.Lock()
		storing, st := p.storing, p.stored[prev.Str]
		_, found := p.stored[prev.Str]
		p.mu.Unlock()
		switch {
		case !storing:
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error",
				"code": "previous_response_not_found", "param": "previous_response_id",
				"message": p.Name + " keeps no stored responses (zero data retention); previous_response_id cannot be used"}})
			return
		case !found:
			writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{"type": "invalid_request_error",
				"code": "previous_response_not_found", "param": "previous_response_id",
				"message": fmt.Sprintf("Previous response with id '%s' not found.", prev.Str)}})
			return
		}
		history = st.items
	}
	input := req.Get("input")
	if !input.Exists() || (!input.IsArray() && input.Type != gjson.String) {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "input must be a string or an array of items")
		return
	}
	items := append(append([]json.RawMessage(nil), history...), responseItems(input)...)

	// What the model read: the last user text and whether the last item
	// is a function's output (the model then answers in text).
	var last string
	afterTool := false
	promptTok := 4 + (len(req.Get("instructions").Str)+3)/4
	for _, raw := range items {
		it := gjson.ParseBytes(raw)
		switch it.Get("type").Str {
		case "", "message":
			text := itemText(it.Get("content"))
			promptTok += 4 + (len(text)+3)/4
			if it.Get("role").Str == "user" {
				last = text
			}
			afterTool = false
		case "function_call_output":
			promptTok += 4 + (len(it.Get("output").Str)+3)/4
			afterTool = true
		default:
			promptTok += 4 + (len(raw)+3)/4
			afterTool = false
		}
	}
	words := strings.Fields(last)
	if len(words) > 12 {
		words = words[:12]
	}
	text := "Hello from " + p.Name + ". You said: " + strings.Join(words, " ")
	if f := req.Get("text.format"); f.IsObject() {
		text = jsonText(f.Get("type").Str, f.Get("schema"), text)
	}
	id := "resp_" + p.Name + "_" + shortHash(body)
	model := req.Get("model").Str

	// Function tools offered, as toolCalls reads chat's.
	var calls []toolCall
	if !afterTool && req.Get("tool_choice").Str != "none" {
		var fns []gjson.Result
		req.Get("tools").ForEach(func(_, t gjson.Result) bool {
			if t.Get("type").Str == "function" && t.Get("name").Type == gjson.String {
				fns = append(fns, t)
			}
			return true
		})
		if named := req.Get("tool_choice.name"); named.Type == gjson.String {
			kept := fns[:0]
			for _, f := range fns {
				if f.Get("name").Str == named.Str {
					kept = append(kept, f)
				}
			}
			fns = kept
		}
		if len(fns) > 0 && (req.Get("parallel_tool_calls").Type == gjson.False || req.Get("tool_choice").IsObject()) {
			fns = fns[:1]
		}
		for i, f := range fns {
			calls = append(calls, toolCall{ID: fmt.Sprintf("call_%s_%d", shortHash(body), i), Name: f.Get("name").Str, Arguments: arguments(f.Get("parameters"))})
		}
		promptTok += 20 * len(req.Get("tools").Array())
	}

	var toks []string
	var output []map[string]any
	if len(calls) > 0 {
		for _, c := range calls {
			toks = append(toks, c.Name, c.Arguments)
			output = append(output, map[string]any{"type": "function_call", "id": "fc_" + c.ID, "call_id": c.ID, "name": c.Name,
				"arguments": c.Arguments, "status": "completed"})
		}
	} else {
		for i, w := range strings.Fields(text) {
			if i > 0 {
				w = " " + w
			}
			toks = append(toks, w)
		}
		output = append(output, map[string]any{"type": "message", "id": "msg_" + p.Name + "_" + shortHash(body), "status": "completed",
			"role": "assistant", "content": []any{map[string]any{"type": "output_text", "text": strings.Join(toks, ""), "annotations": []any{}}}})
	}
	usage := map[string]any{"input_tokens": promptTok, "output_tokens": len(toks), "total_tokens": promptTok + len(toks),
		"input_tokens_details": map[string]int{"cached_tokens": 0}, "output_tokens_details": map[string]int{"reasoning_tokens": 0}}
	resp := func(status string, out []map[string]any, withUsage bool) map[string]any {
		o := make([]any, len(out))
		for i := range out {
			o[i] = out[i]
		}
		m := map[string]any{"id": id, "object": "response", "created_at": created, "status": status, "model": model,
			"output": o, "error": nil, "incomplete_details": nil, "instructions": req.Get("instructions").Value(),
			"previous_response_id": req.Get("previous_response_id").Value(), "store": p.keeps(req),
			"parallel_tool_calls": req.Get("parallel_tool_calls").Type != gjson.False, "tools": req.Get("tools").Value(),
			"text": map[string]any{"format": formatOf(req)}, "usage": nil}
		if m["tools"] == nil {
			m["tools"] = []any{}
		}
		if withUsage {
			m["usage"] = usage
		}
		return m
	}
	store := func() {
		if !p.keeps(req) {
			return
		}
		kept := append([]json.RawMessage(nil), items...)
		for _, o := range output {
			b, _ := json.Marshal(o)
			kept = append(kept, b)
		}
		p.mu.Lock()
		p.stored[id] = storedResponse{items: kept}
		p.mu.Unlock()
	}

	if !req.Get("stream").Bool() {
		p.generated(rec, promptTok, toks)
		store()
		writeJSON(w, http.StatusOK, resp("completed", output, true))
		return
	}
	sw := newSSE(w)
	seq := 0
	send := func(typ string, fields map[string]any) bool {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		data, _ := json.Marshal(fields)
		if _, err := fmt.Fprintf(sw.w, "event: %s\ndata: %s\n\n", typ, data); err != nil {
			return false
		}
		if sw.fl != nil {
			sw.fl.Flush()
		}
		return true
	}
	sent := 0
	defer func() { p.generated(rec, promptTok, toks[:sent]) }()
	if !send("response.created", map[string]any{"response": resp("in_progress", nil, false)}) ||
		!send("response.in_progress", map[string]any{"response": resp("in_progress", nil, false)}) {
		return
	}
	for i, item := range output {
		added := map[string]any{}
		for k, v := range item {
			added[k] = v
		}
		added["status"] = "in_progress"
		if item["type"] == "function_call" {
			added["arguments"] = ""
			if !send("response.output_item.added", map[string]any{"output_index": i, "item": added}) {
				return
			}
			if i > 0 && !sw.pause(r, b.ChunkDelay) {
				return
			}
			args := item["arguments"].(string)
			if !send("response.function_call_arguments.delta", map[string]any{"item_id": item["id"], "output_index": i, "delta": args}) {
				return
			}
			sent += 2
			send("response.function_call_arguments.done", map[string]any{"item_id": item["id"], "output_index": i, "arguments": args})
			send("response.output_item.done", map[string]any{"output_index": i, "item": item})
			continue
		}
		added["content"] = []any{}
		empty := map[string]any{"type": "output_text", "text": "", "annotations": []any{}}
		if !send("response.output_item.added", map[string]any{"output_index": i, "item": added}) ||
			!send("response.content_part.added", map[string]any{"item_id": item["id"], "output_index": i, "content_index": 0, "part": empty}) {
			return
		}
		for j, tok := range toks {
			if j > 0 && !sw.pause(r, b.ChunkDelay) {
				return
			}
			if !send("response.output_text.delta", map[string]any{"item_id": item["id"], "output_index": i, "content_index": 0, "delta": tok}) {
				return
			}
			sent = j + 1
			if j == 0 && b.Reset == "mid-stream" {
				midStreamPause(r)
				resetConnection(w)
				return
			}
			if j == 0 && b.Reset == "truncate" {
				return // a clean end without response.completed
			}
		}
		part := item["content"].([]any)[0]
		send("response.output_text.done", map[string]any{"item_id": item["id"], "output_index": i, "content_index": 0, "text": strings.Join(toks, "")})
		send("response.content_part.done", map[string]any{"item_id": item["id"], "output_index": i, "content_index": 0, "part": part})
		send("response.output_item.done", map[string]any{"output_index": i, "item": item})
	}
	store()
	send("response.completed", map[string]any{"response": resp("completed", output, true)})
}

// jsonText is a JSON mode answer: {"answer": text} for json_object, an
// object with a value of its type for each required property for
// json_schema; text itself for any other format.
func jsonText(format string, schema gjson.Result, text string) string {
	switch format {
	case "json_object":
		b, _ := json.Marshal(map[string]string{"answer": text})
		return string(b)
	case "json_schema":
		return arguments(schema)
	}
	return text
}

// keeps reports whether this request's response is stored: the provider
// stores, and the request did not say store: false.
func (p *Provider) keeps(req gjson.Result) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.storing && req.Get("store").Type != gjson.False
}

func formatOf(req gjson.Result) any {
	if f := req.Get("text.format"); f.IsObject() {
		return f.Value()
	}
	return map[string]string{"type": "text"}
}
