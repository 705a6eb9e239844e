package decision

import (
	"strings"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/qpredict"
	"github.com/stellwerk/stellwerk/internal/request"
)

// predict runs the quality predictor on the request's last user message (the prompt being
// asked) and the classifier's task: one probability per predictor model.
func (r *Router) predict(chat *request.Chat, class *classify.Result) []float64 {
	text := ""
	chat.MessageList.ForEach(func(_, m gjson.Result) bool {
		if m.Get("role").Str == "user" {
			text = userContent(m.Raw)
		}
		return true
	})
	var fs qpredict.Features
	r.Predictor.Extract(qpredict.Signals{Text: text, Task: class.Task, TaskConfidence: class.TaskConfidence}, &fs)
	out := make([]float64, len(r.Predictor.Models()))
	r.Predictor.Predict(&fs, out)
	return out
}

// userContent is a message's text: a string content still JSON-escaped, found in the
// message's raw JSON without unescaping it (gjson would copy the whole prompt), or the
// text parts of an array content joined.
func userContent(raw string) string {
	for i := 0; i < len(raw); {
		k := strings.Index(raw[i:], `"content"`)
		if k < 0 {
			break
		}
		j := i + k + len(`"content"`)
		if i+k > 0 && raw[i+k-1] == '\\' { // inside another string
			i = j
			continue
		}
		for j < len(raw) && (raw[j] == ' ' || raw[j] == '\t' || raw[j] == '\n' || raw[j] == '\r') {
			j++
		}
		if j >= len(raw) || raw[j] != ':' {
			i = j
			continue
		}
		j++
		for j < len(raw) && (raw[j] == ' ' || raw[j] == '\t' || raw[j] == '\n' || raw[j] == '\r') {
			j++
		}
		if j < len(raw) && raw[j] == '"' {
			start := j + 1
			for e := start; e < len(raw); e++ {
				switch raw[e] {
				case '\\':
					e++
				case '"':
					return raw[start:e]
				}
			}
			return raw[start:]
		}
		break
	}
	var b strings.Builder
	gjson.Get(raw, "content").ForEach(func(_, part gjson.Result) bool {
		if part.Get("type").Str == "text" {
			b.WriteString(part.Get("text").Str)
			b.WriteByte('\n')
		}
		return true
	})
	return b.String()
}
