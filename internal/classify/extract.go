package classify

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// Segment is one piece of text a request carries: a message's string
// content, one text part of a content array, a tool call's arguments or a
// tool result. Finding offsets are byte offsets into Segment.Text.
type Segment struct {
	Message int    // index into messages
	Role    string // system, developer, user, assistant, tool, function
	Field   string // where in the message: content, content[2].text, tool_calls[0].function.arguments
	Text    string
}

// maxSegments bounds the work an adversarial request with millions of tiny
// content parts can cause; text beyond it is still counted for tokens.
const maxSegments = 4096

// Segments appends every text segment of a chat request's messages to dst.
// It reads string content, content-part arrays (text parts; other parts
// such as images are skipped), tool_calls[].function.arguments, the legacy
// function_call.arguments and tool/function results.
func Segments(messages gjson.Result, dst []Segment) []Segment {
	idx := -1
	messages.ForEach(func(_, m gjson.Result) bool {
		idx++
		if len(dst) >= maxSegments {
			return false
		}
		role := m.Get("role").String()
		m.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "content":
				dst = appendContent(dst, idx, role, v)
			case "tool_calls":
				i := -1
				v.ForEach(func(_, call gjson.Result) bool {
					i++
					if args := call.Get("function.arguments"); args.Type == gjson.String && args.Str != "" {
						dst = append(dst, Segment{Message: idx, Role: role, Field: "tool_calls[" + strconv.Itoa(i) + "].function.arguments", Text: args.Str})
					}
					return len(dst) < maxSegments
				})
			case "function_call":
				if args := v.Get("arguments"); args.Type == gjson.String && args.Str != "" {
					dst = append(dst, Segment{Message: idx, Role: role, Field: "function_call.arguments", Text: args.Str})
				}
			}
			return true
		})
		return true
	})
	return dst
}

func appendContent(dst []Segment, idx int, role string, v gjson.Result) []Segment {
	switch {
	case v.Type == gjson.String:
		if v.Str != "" {
			dst = append(dst, Segment{Message: idx, Role: role, Field: "content", Text: v.Str})
		}
	case v.IsArray():
		i := -1
		v.ForEach(func(_, part gjson.Result) bool {
			i++
			var text gjson.Result
			if part.Type == gjson.String { // some clients send bare strings
				text = part
			} else {
				text = part.Get("text")
			}
			if text.Type == gjson.String && text.Str != "" {
				dst = append(dst, Segment{Message: idx, Role: role, Field: "content[" + strconv.Itoa(i) + "].text", Text: text.Str})
			}
			return len(dst) < maxSegments
		})
	}
	return dst
}
