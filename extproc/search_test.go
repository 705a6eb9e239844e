package extproc

import (
	"context"
	"testing"

	"go.uber.org/zap"
)

// TestSearchesChargedAsAllowed (the red-team probe): a provider's count of
// web searches is charged up to twice what the request allowed, and not at
// all for a request that offered no search tool. 10^12 searches on a
// stream without a tool, in a usage object without tokens (which no
// plausibility check saw), were charged 9.2 billion EUR.
func TestSearchesChargedAsAllowed(t *testing.T) {
	stream := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"server_tool_use\":{\"web_search_requests\":1000000000000}}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hel\"}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	json := `{"id":"msg_1","type":"message","role":"assistant","model":"sonnet","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn",` +
		`"usage":{"input_tokens":1000,"output_tokens":5,"server_tool_use":{"web_search_requests":500}}}`
	tool := `"tools":[{"type":"web\u005fsearch_20250305","name":"web_search","max_uses":3}],`
	for name, c := range map[string]struct {
		tools, body, ctype string
		stream             bool
		want               int
	}{
		"stream, no tool":    {"", stream, "text/event-stream", true, 0},
		"stream, max_uses 3": {tool, stream, "text/event-stream", true, 6},
		"json, no tool":      {"", json, "application/json", false, 0},
		"json, max_uses 3":   {tool, json, "application/json", false, 6},
	} {
		t.Run(name, func(t *testing.T) {
			st := apisState(t)
			st.Spend = &rowsRecorder{}
			p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
			p.handle(headersMsg("POST", "/v1/messages", false))
			body := `{"model":"sonnet","max_tokens":100,"stream":` + map[bool]string{true: "true", false: "false"}[c.stream] + `,` + c.tools +
				`"messages":[{"role":"user","content":"hi"}]}`
			if r := p.handle(bodyMsg(body)); r.GetImmediateResponse() != nil {
				t.Fatalf("refused: %v", r)
			}
			p.handle(respHeadersMsg("200", c.ctype))
			p.handle(respBodyMsg(c.body, true))
			p.finish()
			if !p.charged || p.charge.Usage.WebSearches != c.want {
				t.Errorf("charged %v, %d searches; want %d", p.charged, p.charge.Usage.WebSearches, c.want)
			}
		})
	}
}
