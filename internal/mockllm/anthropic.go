package mockllm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// messages serves Anthropic's Messages API (POST …/messages): the
// x-api-key and anthropic-version headers, the response shape, and the
// streaming events message_start, content_block_start/delta/stop,
// message_delta (with usage) and message_stop.
func (p *Provider) messages(w http.ResponseWriter, r *http.Request, b Behavior, body []byte, rec *Recorded) {
	if p.APIKey != "" && r.Header.Get("x-api-key") != p.APIKey && !p.accepts(r.Header.Get("x-api-key")) {
		writeAnthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return
	}
	if r.Header.Get("anthropic-version") == "" {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version header is required")
		return
	}
	if b.Status >= 400 {
		if b.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(b.RetryAfter))
		}
		typ := "api_error"
		if b.Status == http.StatusTooManyRequests {
			typ = "rate_limit_error"
		} else if b.Status == 529 {
			typ = "overloaded_error"
		}
		writeAnthropicError(w, b.Status, typ, fmt.Sprintf("%s: injected failure %d", p.Name, b.Status))
		return
	}
	if b.Reset == "overflow" { // as Anthropic words it
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "prompt is too long: 207504 tokens > 200000 maximum")
		return
	}
	if !gjson.ValidBytes(body) {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "invalid JSON")
		return
	}
	req := gjson.ParseBytes(body)
	model := req.Get("model").String()
	if model == "" || !req.Get("max_tokens").Exists() {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "model and max_tokens are required")
		return
	}
	if th := req.Get("thinking"); th.Get("type").Str == "enabled" && th.Get("budget_tokens").Int() >= req.Get("max_tokens").Int() {
		// As Anthropic answers it.
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "`max_tokens` must be greater than `thinking.budget_tokens`")
		return
	}
	if msg := blankTextBlock(req); msg != "" {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", msg)
		return
	}
	var last string
	req.Get("messages").ForEach(func(_, m gjson.Result) bool {
		if m.Get("role").String() == "user" {
			c := m.Get("content")
			if c.Type == gjson.String {
				last = c.Str
			} else {
				var parts []string
				c.ForEach(func(_, blk gjson.Result) bool {
					if blk.Get("type").String() == "text" {
						parts = append(parts, blk.Get("text").String())
					}
					return true
				})
				last = strings.Join(parts, " ")
			}
		}
		return true
	})
	words := strings.Fields(last)
	if len(words) > 12 {
		words = words[:12]
	}
	var toks []string
	for i, w := range strings.Fields("Hello from " + p.Name + ". You said: " + strings.Join(words, " ")) {
		if i > 0 {
			w = " " + w
		}
		toks = append(toks, w)
	}
	if r.Header.Get("x-mock-echo-auth") != "" {
		toks = append(toks, " You sent "+r.Header.Get("x-api-key"))
	}
	inTokens := 0
	req.Get("messages").ForEach(func(_, m gjson.Result) bool {
		inTokens += 4 + (len(m.Get("content").Raw)+3)/4
		return true
	})
	id := "msg_" + p.Name + "_" + shortHash(body)
	if uses := anthropicToolUses(req, shortHash(body)); len(uses) > 0 {
		p.toolUseAnswer(w, req, id, model, inTokens, uses, rec)
		return
	}

	if n, _ := strconv.Atoi(r.Header.Get("x-mock-answer-bytes")); n > 0 {
		for size := len(strings.Join(toks, "")); size < n; size += len(" padding") {
			toks = append(toks, " padding") // an answer of at least n bytes
		}
	}
	searches := webSearches(req)
	if !req.Get("stream").Bool() {
		p.generated(rec, inTokens, toks)
		var content []any
		for i := range searches {
			content = append(content, map[string]any{"type": "server_tool_use", "id": fmt.Sprintf("srvtoolu_%d", i), "name": "web_search",
				"input": map[string]any{"query": "search " + strconv.Itoa(i)}},
				map[string]any{"type": "web_search_tool_result", "tool_use_id": fmt.Sprintf("srvtoolu_%d", i), "content": []any{}})
		}
		content = append(content, map[string]any{"type": "text", "text": strings.Join(toks, "")})
		u := anthropicUsage(r, inTokens, len(toks))
		if searches > 0 {
			u["server_tool_use"] = map[string]any{"web_search_requests": searches}
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": model,
			"content":     content,
			"stop_reason": "end_turn", "stop_sequence": nil,
			"usage": u,
		})
		return
	}
	sent := 0
	defer func() { p.generated(rec, inTokens, toks[:sent]) }()
	if r.Header.Get("x-mock-content-length") != "" {
		// A provider that sends its whole stream at once, with a
		// Content-Length: rendered into a buffer first.
		var buf bytes.Buffer
		rw := &bufferedSSE{ResponseWriter: w, buf: &buf}
		defer rw.finish()
		w = rw
	}
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) bool {
		data, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	if !send("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "usage": anthropicUsage(r, inTokens, 1)}}) {
		return
	}
	// A request with extended thinking streams its thinking first, as
	// Claude does: a thinking block, its signature, then the text's.
	text, thought := 0, 0
	if req.Get("thinking.type").Str == "enabled" {
		send("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "thinking", "thinking": ""}})
		for range thinkingDeltas {
			send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "thinking_delta", "thinking": thinkingDelta}})
			thought += thinkingDeltaTokens
		}
		send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxvmock"}})
		send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
		text = 1
	}
	// Its searches, each a server_tool_use block and its result.
	for i := range searches {
		send("content_block_start", map[string]any{"type": "content_block_start", "index": text, "content_block": map[string]any{
			"type": "server_tool_use", "id": fmt.Sprintf("srvtoolu_%d", i), "name": "web_search", "input": map[string]any{}}})
		send("content_block_delta", map[string]any{"type": "content_block_delta", "index": text, "delta": map[string]any{"type": "input_json_delta", "partial_json": `{"query":"search"}`}})
		send("content_block_stop", map[string]any{"type": "content_block_stop", "index": text})
		send("content_block_start", map[string]any{"type": "content_block_start", "index": text + 1, "content_block": map[string]any{
			"type": "web_search_tool_result", "tool_use_id": fmt.Sprintf("srvtoolu_%d", i), "content": []any{}}})
		send("content_block_stop", map[string]any{"type": "content_block_stop", "index": text + 1})
		text += 2
	}
	send("content_block_start", map[string]any{"type": "content_block_start", "index": text, "content_block": map[string]any{"type": "text", "text": ""}})
	send("ping", map[string]any{"type": "ping"})
	for i, tok := range toks {
		if i > 0 && b.ChunkDelay > 0 {
			select {
			case <-time.After(b.ChunkDelay):
			case <-r.Context().Done():
				return
			}
		}
		if !send("content_block_delta", map[string]any{"type": "content_block_delta", "index": text, "delta": map[string]any{"type": "text_delta", "text": tok}}) {
			return
		}
		sent = i + 1
		if i == 0 && b.Reset == "mid-stream" {
			midStreamPause(r)
			resetConnection(w)
			return
		}
		if i == 0 && b.Reset == "truncate" {
			return // a clean end of the response, without message_delta or message_stop
		}
		if i == 0 && b.Reset == "error" {
			send("error", map[string]any{"type": "error", "error": map[string]any{"type": "overloaded_error", "message": "Overloaded"}})
			return
		}
	}
	send("content_block_stop", map[string]any{"type": "content_block_stop", "index": text})
	send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
		"usage": streamUsageEnd(thought+len(toks), searches)})
	send("message_stop", map[string]any{"type": "message_stop"})
}

// anthropicToolUses are the tool_use blocks the model answers a request
// that offers tools with, as toolCalls does for chat: none when tool_choice
// is none or the last message carries a tool_result (the model then
// answers in text); the named tool for tool_choice {type: tool}; else the
// first tool, or every tool (parallel use) when several are offered and
// disable_parallel_tool_use is not set.
func anthropicToolUses(req gjson.Result, salt string) []toolCall {
	tools := req.Get("tools")
	if !tools.IsArray() || !tools.Get("0").Exists() {
		return nil
	}
	choice := req.Get("tool_choice")
	if choice.Get("type").Str == "none" {
		return nil
	}
	msgs := req.Get("messages").Array()
	if len(msgs) > 0 && msgs[len(msgs)-1].Get(`content.#(type=="tool_result")`).Exists() {
		return nil
	}
	var fns []gjson.Result
	tools.ForEach(func(_, t gjson.Result) bool {
		if typ := t.Get("type").Str; typ != "" && typ != "custom" {
			return true // a server tool (web search, code execution): Anthropic runs it, the client gets no tool_use
		}
		if t.Get("name").Type == gjson.String && (choice.Get("type").Str != "tool" || t.Get("name").Str == choice.Get("name").Str) {
			fns = append(fns, t)
		}
		return true
	})
	if len(fns) == 0 {
		return nil
	}
	if choice.Get("disable_parallel_tool_use").Bool() || choice.Get("type").Str == "tool" {
		fns = fns[:1]
	}
	uses := make([]toolCall, len(fns))
	for i, f := range fns {
		uses[i] = toolCall{ID: fmt.Sprintf("toolu_%s_%d", salt, i), Name: f.Get("name").Str, Arguments: arguments(f.Get("input_schema"))}
	}
	return uses
}

// toolUseAnswer answers with tool_use blocks (stop_reason tool_use):
// whole, or streamed as content_block_start with an empty input and the
// input's JSON in input_json_delta events, in two parts.
func (p *Provider) toolUseAnswer(w http.ResponseWriter, req gjson.Result, id, model string, inTokens int, uses []toolCall, rec *Recorded) {
	inTokens += 20 * len(req.Get("tools").Array())
	var out []string
	blocks := make([]any, len(uses))
	for i, u := range uses {
		out = append(out, u.Name, u.Arguments)
		blocks[i] = map[string]any{"type": "tool_use", "id": u.ID, "name": u.Name, "input": json.RawMessage(u.Arguments)}
	}
	outTokens := len(out)
	p.generated(rec, inTokens, out)
	if !req.Get("stream").Bool() {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": model, "content": blocks,
			"stop_reason": "tool_use", "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": inTokens, "output_tokens": outTokens},
		})
		return
	}
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) {
		data, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
		if fl != nil {
			fl.Flush()
		}
	}
	send("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "usage": map[string]any{"input_tokens": inTokens, "output_tokens": 1}}})
	for i, u := range uses {
		send("content_block_start", map[string]any{"type": "content_block_start", "index": i,
			"content_block": map[string]any{"type": "tool_use", "id": u.ID, "name": u.Name, "input": map[string]any{}}})
		half := len(u.Arguments) / 2
		for _, part := range []string{u.Arguments[:half], u.Arguments[half:]} {
			send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": part}})
		}
		send("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
	}
	send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "tool_use", "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": outTokens}})
	send("message_stop", map[string]any{"type": "message_stop"})
}

// blankTextBlock is Anthropic's refusal of a message's text block of
// whitespace only, "" when there is none: an answer translated with one,
// sent back in the history, fails every later turn on an Anthropic model.
func blankTextBlock(req gjson.Result) string {
	var msg string
	req.Get("messages").ForEach(func(i, m gjson.Result) bool {
		m.Get("content").ForEach(func(j, blk gjson.Result) bool {
			if blk.Get("type").Str == "text" && strings.TrimSpace(blk.Get("text").Str) == "" {
				msg = "messages." + i.String() + ".content." + j.String() + ": text content blocks must contain non-whitespace text"
			}
			return msg == ""
		})
		return msg == ""
	})
	return msg
}

func writeAnthropicError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}

// bufferedSSE holds a stream's events and writes them at the end with a
// Content-Length (x-mock-content-length). It does not flush.
type bufferedSSE struct {
	http.ResponseWriter
	buf    *bytes.Buffer
	status int
}

func (b *bufferedSSE) WriteHeader(code int)        { b.status = code }
func (b *bufferedSSE) Write(p []byte) (int, error) { return b.buf.Write(p) }

func (b *bufferedSSE) finish() {
	b.ResponseWriter.Header().Set("Content-Length", strconv.Itoa(b.buf.Len()))
	b.ResponseWriter.WriteHeader(max(b.status, http.StatusOK))
	_, _ = b.ResponseWriter.Write(b.buf.Bytes())
}

// anthropicUsage is a message's usage; with x-mock-cached, that many of the
// prompt tokens are cache reads, and with x-mock-cache-write ("600,400":
// five minutes, one hour; "1000": a total without the split, as older API
// versions say) cache writes, both outside input_tokens, as Anthropic
// counts.
func anthropicUsage(r *http.Request, in, out int) map[string]any {
	u := map[string]any{"input_tokens": in, "output_tokens": out}
	if n, _ := strconv.Atoi(r.Header.Get("x-mock-cached")); n > 0 {
		n = min(n, in)
		in -= n
		u["input_tokens"], u["cache_read_input_tokens"] = in, n
	}
	if h := r.Header.Get("x-mock-cache-write"); h != "" {
		five, hour, split := strings.Cut(h, ",")
		w5m, _ := strconv.Atoi(five)
		w1h, _ := strconv.Atoi(hour)
		w5m = min(max(w5m, 0), in)
		w1h = min(max(w1h, 0), in-w5m)
		u["input_tokens"], u["cache_creation_input_tokens"] = in-w5m-w1h, w5m+w1h
		if split {
			u["cache_creation"] = map[string]int{"ephemeral_5m_input_tokens": w5m, "ephemeral_1h_input_tokens": w1h}
		}
	}
	return u
}

// streamUsageEnd is message_delta's usage: the output, and the searches
// the message ran.
func streamUsageEnd(out, searches int) map[string]any {
	u := map[string]any{"output_tokens": out}
	if searches > 0 {
		u["server_tool_use"] = map[string]any{"web_search_requests": searches}
	}
	return u
}

// webSearches is how many times the mock searches for a request that
// offers Anthropic's web search server tool (a tool whose type starts
// web_search_): up to its max_uses, 3 at most, summed over such tools.
func webSearches(req gjson.Result) int {
	n := 0
	req.Get("tools").ForEach(func(_, t gjson.Result) bool {
		if strings.HasPrefix(t.Get("type").Str, "web_search_") {
			mu := int64(3)
			if v := t.Get("max_uses"); v.Type == gjson.Number {
				mu = min(v.Int(), 3)
			}
			n += int(max(mu, 0))
		}
		return true
	})
	return n
}

// A stream with extended thinking thinks thinkingDeltas times this delta
// before it answers; Anthropic bills thinking as output, each delta
// thinkingDeltaTokens of it.
const (
	thinkingDelta       = "Weighing both readings of the question before answering it. "
	thinkingDeltas      = 40
	thinkingDeltaTokens = 12
)
