package bench

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
)

// Endpoint is an API the load can be sent to: where, a request body of
// about a given size, and what ends a complete stream. docs/benchmarks.md
// reports a row per endpoint measured (--endpoints); another API is one
// more entry in Endpoints.
type Endpoint struct {
	Name string
	Path string // under the target's base URL, e.g. /v1/chat/completions
	// Body is a request asking p, filled to about size bytes with plain
	// prose (no personal data or secrets, which would change the route
	// rather than measure it).
	Body func(p Prompt, size int, stream bool, model string) []byte
	// StreamEnd is what the last bytes of a complete stream contain; ""
	// for an API that does not stream (its stream scenarios are skipped).
	StreamEnd string
	// Headers are sent with every request of the endpoint.
	Headers map[string]string
	// KeyHeader, when set, carries the target's bearer key instead of
	// Authorization (x-api-key, as the anthropic SDK sends it).
	KeyHeader string
}

// Endpoints are the APIs a run can measure, chat first (the default).
var Endpoints = []Endpoint{
	{Name: "chat", Path: "/v1/chat/completions", Body: chatBody, StreamEnd: "data: [DONE]"},
	{Name: "responses", Path: "/v1/responses", Body: responsesBody, StreamEnd: "event: response.completed"},
	{Name: "embeddings", Path: "/v1/embeddings", Body: embeddingsBody},
	{Name: "completions", Path: "/v1/completions", Body: completionsBody, StreamEnd: "data: [DONE]"},
	{Name: "messages", Path: "/v1/messages", Body: messagesBody, StreamEnd: "event: message_stop",
		Headers: map[string]string{"anthropic-version": "2023-06-01"}, KeyHeader: "x-api-key"},
}

// EndpointNames lists the names of Endpoints.
func EndpointNames() []string {
	out := make([]string, len(Endpoints))
	for i, e := range Endpoints {
		out[i] = e.Name
	}
	return out
}

// EndpointNamed finds an endpoint by name.
func EndpointNamed(name string) (Endpoint, bool) {
	i := slices.IndexFunc(Endpoints, func(e Endpoint) bool { return e.Name == name })
	if i < 0 {
		return Endpoint{}, false
	}
	return Endpoints[i], true
}

// request is one kind of request the load sends: the same path and
// headers, its bodies in turn (one, or one per prompt).
type request struct {
	path    string
	bodies  [][]byte
	stream  bool
	end     []byte // what ends a complete stream
	headers map[string]string
	keyIn   string // Endpoint.KeyHeader
}

// request is the endpoint's request for each of prompts (none: the
// same prompt every time).
func (e Endpoint) request(prompts []Prompt, size int, stream bool, model string) request {
	if len(prompts) == 0 {
		prompts = []Prompt{samePrompt}
	}
	rq := request{path: e.Path, stream: stream, end: []byte(e.StreamEnd), headers: e.Headers, keyIn: e.KeyHeader}
	for _, p := range prompts {
		rq.bodies = append(rq.bodies, e.Body(p, size, stream, model))
	}
	return rq
}

// body is the i-th request's body.
func (rq request) body(i int) []byte { return rq.bodies[i%len(rq.bodies)] }

// chatRequest is the default load: a chat request (chatBody) for each of
// prompts.
func chatRequest(prompts []Prompt, size int, stream bool, model string) request {
	return Endpoints[0].request(prompts, size, stream, model)
}

var notes = []string{
	"The routing layer moved most traffic to the cheaper model during the night shift.",
	"Latency stayed within the agreed budget while the queue was short.",
	"Two regions reported slower answers after the network change on Tuesday.",
	"The team wants a weekly summary of cost per workspace and per model.",
	"Nobody could explain why the retry rate doubled for a few minutes.",
	"A new dashboard shows how many requests each provider served.",
	"Quality scores from the last evaluation were slightly higher than before.",
}

// prose fills head … tail to about size bytes with the notes.
func prose(head, tail string, size int) []byte {
	var b strings.Builder
	b.WriteString(head)
	for i := 0; b.Len()+len(tail) < size; i++ {
		s := notes[i%len(notes)] + " "
		if room := size - len(tail) - b.Len(); len(s) > room {
			s = s[:room]
		}
		b.WriteString(s)
	}
	b.WriteString(tail)
	return []byte(b.String())
}

// str is s as the inside of a JSON string.
func str(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// isSame reports whether p is the "same" load's one prompt.
func isSame(p Prompt) bool {
	return p.System == samePrompt.System && p.Text == samePrompt.Text && p.Earlier == nil
}

// ask is p's instruction as the start of a JSON string's inside, followed
// by the notes it is about.
func ask(p Prompt) string {
	if isSame(p) {
		return str(p.Text)
	}
	return str(p.Text + "\n\nNotes: ")
}

// chatBody is a chat request of about size bytes: a system prompt and a
// user message, the prompt's instruction and then plain prose.
func chatBody(p Prompt, size int, stream bool, model string) []byte {
	head := `{"model":"` + model + `",`
	if stream {
		head += `"stream":true,"stream_options":{"include_usage":true},`
	}
	// A conversation's earlier turns come on top of the size, which is
	// the request's without them: each user turn as it was sent when it
	// was the newest, an answer after it.
	var history strings.Builder
	for j, e := range p.Earlier {
		sent := gjson.GetBytes(chatBody(e, size, stream, model), "messages.1.content").String()
		history.WriteString(`{"role":"user","content":"` + str(sent) + `"},{"role":"assistant","content":"` +
			str(string(prose(fmt.Sprintf("Answer %d. ", j+1), "", 200))) + `"},`)
	}
	head += `"messages":[{"role":"system","content":"` + str(p.System) + `"},` + history.String() + `{"role":"user","content":"` + ask(p)
	return prose(head, `"}]}`, size+history.Len())
}

// responsesBody is chatBody's request in the Responses API: instructions
// and one input text.
func responsesBody(p Prompt, size int, stream bool, model string) []byte {
	head := `{"model":"` + model + `",`
	if stream {
		head += `"stream":true,`
	}
	head += `"instructions":"` + str(p.System) + `","input":"` + ask(p)
	return prose(head, `"}`, size)
}

// embeddingsBody embeds the notes, one input string (the prompt's
// instruction first, when it is not the default's).
func embeddingsBody(p Prompt, size int, _ bool, model string) []byte {
	head := `{"model":"` + model + `","input":"`
	if !isSame(p) {
		head += ask(p)
	}
	return prose(head, `"}`, size)
}

// completionsBody is a legacy completions prompt of the notes.
func completionsBody(p Prompt, size int, stream bool, model string) []byte {
	head := `{"model":"` + model + `",`
	if stream {
		head += `"stream":true,"stream_options":{"include_usage":true},`
	}
	head += `"max_tokens":64,"prompt":"` + ask(p)
	return prose(head, `"}`, size)
}

// messagesBody is chatBody's request in Anthropic's Messages API.
func messagesBody(p Prompt, size int, stream bool, model string) []byte {
	head := `{"model":"` + model + `","max_tokens":64,`
	if stream {
		head += `"stream":true,`
	}
	head += `"system":"` + str(p.System) + `","messages":[{"role":"user","content":"` + ask(p)
	return prose(head, `"}]}`, size)
}
