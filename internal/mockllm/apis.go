package mockllm

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// apiOf is the OpenAI endpoint a path ends in: chat, embeddings,
// completions, responses, or "" for none.
func apiOf(path string) string {
	switch {
	case strings.HasSuffix(path, "/responses"):
		return "responses"
	case strings.HasSuffix(path, "/chat/completions"):
		return "chat"
	case strings.HasSuffix(path, "/embeddings"):
		return "embeddings"
	case strings.HasSuffix(path, "/completions"):
		return "completions"
	}
	return ""
}

// DefaultDimensions is the length of an embedding when the request names
// no dimensions.
const DefaultDimensions = 8

// choicesOf is the request's n: 1 when unset or out of range.
func choicesOf(req gjson.Result) int {
	n := req.Get("n")
	if n.Type != gjson.Number || n.Num < 1 || n.Num > 16 || n.Num != math.Trunc(n.Num) {
		return 1
	}
	return int(n.Num)
}

// repeat is reply n times, the tokens of n identical choices.
func repeat(reply []string, n int) []string {
	out := make([]string, 0, n*len(reply))
	for range n {
		out = append(out, reply...)
	}
	return out
}

// inputTexts are the strings of an embeddings input or completions prompt
// (token ids count as one text each array, "" as their text).
func inputTexts(v gjson.Result) []string {
	if v.Type == gjson.String {
		return []string{v.Str}
	}
	first := v.Get("0")
	if first.Type == gjson.Number { // one array of token ids
		return []string{""}
	}
	var out []string
	v.ForEach(func(_, e gjson.Result) bool {
		out = append(out, e.Str)
		return true
	})
	return out
}

// textTokens approximates a tokenizer for texts without chat framing.
func textTokens(texts []string) int {
	n := 0
	for _, t := range texts {
		n += 1 + (len(t)+3)/4
	}
	return n
}

// embeddings answers POST …/embeddings: one vector of the requested
// dimensions per input, unit length, derived from the text (the same text,
// the same vector), as floats or base64 little-endian float32s.
func (p *Provider) embeddings(w http.ResponseWriter, req gjson.Result, rec *Recorded) {
	dims := DefaultDimensions
	if d := req.Get("dimensions"); d.Type == gjson.Number && d.Num >= 1 && d.Num <= 4096 {
		dims = int(d.Num)
	}
	texts := inputTexts(req.Get("input"))
	if len(texts) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "'input' must not be empty")
		return
	}
	b64 := req.Get("encoding_format").Str == "base64"
	data := make([]any, len(texts))
	for i, t := range texts {
		v := vector(t, dims)
		var emb any = v
		if b64 {
			buf := make([]byte, 4*len(v))
			for j, f := range v {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(float32(f)))
			}
			emb = base64.StdEncoding.EncodeToString(buf)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	pt := textTokens(texts)
	p.generated(rec, pt, nil)
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list", "data": data, "model": req.Get("model").Str,
		"usage": map[string]int{"prompt_tokens": pt, "total_tokens": pt},
	})
}

// vector is a deterministic unit vector for text.
func vector(text string, dims int) []float64 {
	v := make([]float64, dims)
	var norm float64
	for i := range v {
		h := sha256.Sum256([]byte(strconv.Itoa(i) + "\x00" + text))
		x := float64(binary.BigEndian.Uint32(h[:4]))/float64(math.MaxUint32)*2 - 1
		v[i] = x
		norm += x * x
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] = math.Round(v[i]/norm*1e6) / 1e6
	}
	return v
}

// completions answers the legacy POST …/completions: n choices of text,
// streamed (object text_completion chunks, usage last when asked) or not.
func (p *Provider) completions(w http.ResponseWriter, r *http.Request, b Behavior, req gjson.Result, body []byte, rec *Recorded) {
	texts := inputTexts(req.Get("prompt"))
	words := strings.Fields(strings.Join(texts, " "))
	if len(words) > 12 {
		words = words[:12]
	}
	var reply []string
	for i, w := range strings.Fields("Hello from " + p.Name + ". You wrote: " + strings.Join(words, " ")) {
		if i > 0 {
			w = " " + w
		}
		reply = append(reply, w)
	}
	if mt := req.Get("max_tokens"); mt.Type == gjson.Number && int(mt.Num) < len(reply) && mt.Num >= 1 {
		reply = reply[:int(mt.Num)]
	}
	n := choicesOf(req)
	usage := Usage{PromptTokens: textTokens(texts), CompletionTokens: n * len(reply)}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	id := "cmpl-" + p.Name + "-" + shortHash(body)
	model := req.Get("model").Str
	if req.Get("stream").Bool() {
		sw := newSSE(w)
		sent := 0
		for i, tok := range reply {
			if i > 0 && !sw.pause(r, b.ChunkDelay) {
				break
			}
			ok := true
			for c := 0; c < n && ok; c++ {
				ok = sw.send(map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
					"choices": []any{map[string]any{"index": c, "text": tok, "finish_reason": nil, "logprobs": nil}}})
				sent++
			}
			if !ok {
				break
			}
		}
		if sent == n*len(reply) {
			for c := range n {
				sw.send(map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
					"choices": []any{map[string]any{"index": c, "text": "", "finish_reason": "stop", "logprobs": nil}}})
			}
			if req.Get("stream_options.include_usage").Bool() && r.Header.Get("x-mock-no-usage") == "" {
				sw.send(map[string]any{"id": id, "object": "text_completion", "created": created, "model": model, "choices": []any{}, "usage": usage})
			}
			sw.done()
		}
		p.generated(rec, usage.PromptTokens, repeat(reply, n)[:sent])
		return
	}
	p.generated(rec, usage.PromptTokens, repeat(reply, n))
	choices := make([]any, n)
	for i := range choices {
		choices[i] = map[string]any{"index": i, "text": strings.Join(reply, ""), "finish_reason": "stop", "logprobs": nil}
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
		"system_fingerprint": "fp_" + p.Name, "choices": choices, "usage": usage})
}

// toolCall is one function call the fake model makes.
type toolCall struct {
	ID, Name, Arguments string
}

// toolCalls are the calls a model makes to a chat request that offers
// tools: none when tool_choice is "none" or the last message is a tool's
// result (the model then answers in text); the named function when
// tool_choice names one; otherwise the first tool, or every function tool
// (parallel calls) when several are offered and parallel_tool_calls is not
// false. Arguments fill each required (else each) parameter with a value
// of its type.
func toolCalls(req gjson.Result, salt string) []toolCall {
	tools := req.Get("tools")
	if !tools.IsArray() || !tools.Get("0").Exists() {
		return nil
	}
	choice := req.Get("tool_choice")
	if choice.Str == "none" {
		return nil
	}
	msgs := req.Get("messages").Array()
	if len(msgs) > 0 && msgs[len(msgs)-1].Get("role").Str == "tool" {
		return nil
	}
	var fns []gjson.Result
	tools.ForEach(func(_, t gjson.Result) bool {
		if f := t.Get("function"); f.Get("name").Type == gjson.String {
			fns = append(fns, f)
		}
		return true
	})
	if named := choice.Get("function.name"); named.Type == gjson.String {
		kept := fns[:0]
		for _, f := range fns {
			if f.Get("name").Str == named.Str {
				kept = append(kept, f)
			}
		}
		fns = kept
	}
	if len(fns) == 0 {
		return nil
	}
	if req.Get("parallel_tool_calls").Type == gjson.False || choice.IsObject() {
		fns = fns[:1]
	}
	calls := make([]toolCall, len(fns))
	for i, f := range fns {
		calls[i] = toolCall{ID: fmt.Sprintf("call_%s_%d", salt, i), Name: f.Get("name").Str, Arguments: arguments(f.Get("parameters"))}
	}
	return calls
}

// arguments are a JSON object with a value of its type for each required
// parameter (each parameter when none is required).
func arguments(schema gjson.Result) string {
	props := schema.Get("properties")
	want := map[string]bool{}
	schema.Get("required").ForEach(func(_, r gjson.Result) bool {
		want[r.Str] = true
		return true
	})
	args := map[string]any{}
	props.ForEach(func(k, v gjson.Result) bool {
		if len(want) > 0 && !want[k.Str] {
			return true
		}
		switch v.Get("type").Str {
		case "number", "integer":
			args[k.Str] = 1
		case "boolean":
			args[k.Str] = true
		case "array":
			args[k.Str] = []any{}
		case "object":
			args[k.Str] = map[string]any{}
		default:
			if e := v.Get("enum.0"); e.Exists() {
				args[k.Str] = e.Value()
			} else {
				args[k.Str] = "example"
			}
		}
		return true
	})
	b, _ := json.Marshal(args)
	return string(b)
}

// toolCallAnswer answers a chat request with tool calls, in each of n
// choices, as JSON or as a stream (the call's id and name first, its
// arguments in the next delta, finish_reason tool_calls).
func (p *Provider) toolCallAnswer(w http.ResponseWriter, r *http.Request, b Behavior, req gjson.Result, body []byte, rec *Recorded, calls []toolCall, n int) {
	var out []string
	for _, c := range calls {
		out = append(out, c.Name, c.Arguments)
	}
	usage := Usage{PromptTokens: promptTokens(req) + 20*len(req.Get("tools").Array()), CompletionTokens: n * len(out)}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	id := "chatcmpl-" + p.Name + "-" + shortHash(body)
	model := req.Get("model").Str
	var content any // none
	if r.Header.Get("x-mock-blank-text") != "" {
		content = "\n\n"
	}
	if req.Get("stream").Bool() {
		sw := newSSE(w)
		chunk := func(c int, delta map[string]any, finish any) map[string]any {
			return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
				"system_fingerprint": "fp_" + p.Name,
				"choices":            []any{map[string]any{"index": c, "delta": delta, "finish_reason": finish, "logprobs": nil}}}
		}
		sent := 0
		for c := range n {
			if !sw.send(chunk(c, map[string]any{"role": "assistant", "content": content}, nil)) {
				return
			}
			if r.Header.Get("x-mock-interleave") != "" && len(calls) > 1 {
				// A provider that interleaves its parallel calls: every
				// call begins, then each sends half its arguments in turn.
				if !sw.interleave(r, b.ChunkDelay, len(calls), func(i, part int) map[string]any {
					f := map[string]any{"arguments": ""}
					tc := map[string]any{"index": i, "function": f}
					a := calls[i].Arguments
					switch part {
					case 0:
						tc["id"], tc["type"], f["name"] = calls[i].ID, "function", calls[i].Name
					case 1:
						f["arguments"] = a[:len(a)/2]
					case 2:
						f["arguments"] = a[len(a)/2:]
					}
					return chunk(c, map[string]any{"tool_calls": []any{tc}}, nil)
				}) {
					return
				}
				sent += 2 * len(calls)
				sw.send(chunk(c, map[string]any{}, "tool_calls"))
				continue
			}
			for i, call := range calls {
				if (c > 0 || i > 0) && !sw.pause(r, b.ChunkDelay) {
					return
				}
				if !sw.send(chunk(c, map[string]any{"tool_calls": []any{map[string]any{"index": i, "id": call.ID, "type": "function",
					"function": map[string]any{"name": call.Name, "arguments": ""}}}}, nil)) {
					return
				}
				if !sw.send(chunk(c, map[string]any{"tool_calls": []any{map[string]any{"index": i,
					"function": map[string]any{"arguments": call.Arguments}}}}, nil)) {
					return
				}
				sent += 2
			}
			sw.send(chunk(c, map[string]any{}, "tool_calls"))
		}
		if req.Get("stream_options.include_usage").Bool() && r.Header.Get("x-mock-no-usage") == "" {
			sw.send(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
				"system_fingerprint": "fp_" + p.Name, "choices": []any{}, "usage": usage})
		}
		sw.done()
		p.generated(rec, usage.PromptTokens, repeat(out, n)[:sent])
		return
	}
	p.generated(rec, usage.PromptTokens, repeat(out, n))
	finish, cut := "tool_calls", r.Header.Get("x-mock-cut-tool-call") != ""
	if cut {
		finish = "length" // the output limit ended the arguments mid-JSON
	}
	tcs := make([]any, len(calls))
	for i, c := range calls {
		args := c.Arguments
		if cut {
			args = args[:len(args)/2]
		}
		tcs[i] = map[string]any{"id": c.ID, "type": "function", "function": map[string]any{"name": c.Name, "arguments": args}}
	}
	choices := make([]any, n)
	for i := range choices {
		choices[i] = map[string]any{"index": i, "finish_reason": finish, "logprobs": nil,
			"message": map[string]any{"role": "assistant", "content": content, "refusal": nil, "tool_calls": tcs}}
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "chat.completion", "created": created, "model": model,
		"system_fingerprint": "fp_" + p.Name, "choices": choices, "usage": usage})
}

// streamChoices streams n choices of reply, token by token, each choice's
// chunk in turn, and returns how many tokens it sent.
func (p *Provider) streamChoices(w http.ResponseWriter, r *http.Request, b Behavior, id, model string, reply []string, n int, usage Usage, includeUsage bool) (sent int) {
	sw := newSSE(w)
	chunk := func(c int, delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_" + p.Name,
			"choices":            []any{map[string]any{"index": c, "delta": delta, "finish_reason": finish, "logprobs": nil}}}
	}
	for c := range n {
		if !sw.send(chunk(c, map[string]any{"role": "assistant", "content": ""}, nil)) {
			return
		}
	}
	for i, tok := range reply {
		if i > 0 && !sw.pause(r, b.ChunkDelay) {
			return
		}
		for c := range n {
			if !sw.send(chunk(c, map[string]any{"content": tok}, nil)) {
				return
			}
			sent++
		}
	}
	for c := range n {
		sw.send(chunk(c, map[string]any{}, "stop"))
	}
	if includeUsage {
		sw.send(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_" + p.Name, "choices": []any{}, "usage": usage})
	}
	sw.done()
	return sent
}

// sse writes server-sent events.
type sse struct {
	w  http.ResponseWriter
	fl http.Flusher
}

func newSSE(w http.ResponseWriter) *sse {
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, fl: fl}
}

func (s *sse) send(v any) bool {
	data, _ := json.Marshal(v)
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", data); err != nil {
		return false
	}
	if s.fl != nil {
		s.fl.Flush()
	}
	return true
}

// interleave sends chunk(i, part) for parts 0, 1, 2 of each of n calls,
// part by part: every call's part 0, then every call's part 1, …; false
// when the client went away.
func (s *sse) interleave(r *http.Request, d time.Duration, n int, chunk func(i, part int) map[string]any) bool {
	for part := range 3 {
		for i := range n {
			if (part > 0 || i > 0) && !s.pause(r, d) {
				return false
			}
			if !s.send(chunk(i, part)) {
				return false
			}
		}
	}
	return true
}

// pause waits d between chunks; false when the client went away.
func (s *sse) pause(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

func (s *sse) done() {
	fmt.Fprint(s.w, "data: [DONE]\n\n")
	if s.fl != nil {
		s.fl.Flush()
	}
}
