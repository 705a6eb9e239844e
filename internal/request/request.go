// Package request parses an OpenAI chat-completions request body once, with
// gjson over the raw bytes, and checks the shape stellwerk relies on. It is
// the first code to touch untrusted input and is fuzzed.
package request

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/jsonscan"
)

// Chat is what the router needs from a request of any endpoint (API says
// which; embeddings and legacy completions fill the members they have,
// see ParseEmbeddings and ParseCompletions). It holds indexes into the
// body, not copies of the prompt.
type Chat struct {
	// API is the endpoint: APIChat, APIEmbeddings or APICompletions.
	API   string
	Model string
	// Alias is the model member as sent when it named a model by one of
	// its aliases (the decision sets it, and Model to the model's id);
	// "" otherwise.
	Alias string
	// Route and RouteVersion are the named route a model of the form
	// route:<name> or route:<name>@<N> asks for ("" and 0: none; 0 with a
	// route: the live version).
	Route        string
	RouteVersion int64
	Stream       bool
	Messages     int // number of messages
	// MessageList is the messages array, for the classifier to read in place.
	MessageList gjson.Result
	// UserRaw, MetadataObj, StopList, SafetyID and CacheKey are the user,
	// metadata, stop, safety_identifier and prompt_cache_key members as
	// sent, for the classifier: the provider gets them too.
	UserRaw, MetadataObj, StopList, SafetyID, CacheKey gjson.Result
	// Others are the chat request's other members with text (strings,
	// objects, arrays), which a provider may read: classified as
	// parameters. Nil for most requests.
	Others []jsonscan.KeyValue
	// MaxTokens is max_completion_tokens or max_tokens, 0 when unset.
	MaxTokens int
	// Tools is true when the request offers tools (or legacy functions).
	Tools bool
	// ToolList, FunctionList, ResponseFormatObj and Prediction are the
	// tools, functions, response_format and prediction members, for the
	// classifier to read in place (zero when absent).
	ToolList, FunctionList, ResponseFormatObj, Prediction gjson.Result
	// ResponseFormat is response_format.type ("" when unset).
	ResponseFormat string
	// Vision is true when a message carries an image part; Images counts
	// them, for the budgets' worst case.
	Vision bool
	Images int
	// Audio is true when a message carries an input_audio part, Files
	// when one carries a file part (a PDF or another document inline, or
	// by file_id): a model reads them only with the audio and files
	// capabilities. FileByID is a file part by file_id: a file stored at
	// one provider, which only that provider can read.
	Audio, Files, FileByID bool
	// PDFPages counts the pages of the PDFs sent inline (file parts'
	// file_data, which the Messages and Responses decision copies carry
	// their PDFs as), each at most what a provider may find
	// (PDFReader.Bound), for the budgets' worst case; PDFUncounted is one
	// whose pages cannot be counted so (the budgets hold the model's
	// context window). A file by id is read by neither.
	PDFPages     int
	PDFUncounted bool
	// pdfs reads the request's inline PDFs while it is parsed, with one
	// inflate bound for all of them; nil before the first and after the
	// parse, so its buffers are not kept for the request's life.
	pdfs *PDFReader
	// User is the OpenAI `user` field; Metadata the `metadata` object's
	// string values.
	User     string
	Metadata map[string]string
	// Policy is the raw per-request `policy` member (validated elsewhere).
	Policy gjson.Result
	// IncludeUsage is stream_options.include_usage as the client sent it.
	IncludeUsage bool
	// Input is the text the model reads outside messages: the embeddings
	// input or the completions prompt (a string or an array of them, or
	// token ids); Suffix the completions suffix. Zero for chat.
	Input, Suffix gjson.Result
	// LargestInput is the estimated tokens of the longest of several
	// inputs (an array of them), which is what must fit a model's context
	// window: each is embedded, or completed, on its own. 0 for one input.
	LargestInput int
	// Choices is n: the choices asked for, each billed (0 or 1 when unset);
	// for legacy completions, n or best_of, whichever is more, for each
	// prompt of an array.
	Choices int
	// Logprobs is logprobs: true (chat).
	Logprobs bool
	// For the Responses API: NativeOnly names what only a provider that
	// serves it natively can take ("" for none); Stored is a request that
	// continues a stored response (previous_response_id, conversation).
	NativeOnly string
	Stored     bool
	// OpenAIWireOnly names the first thing in a chat request the
	// translation to Anthropic's Messages API cannot carry ("" for
	// none): a tool type or tool_choice other than function's, audio
	// output, web search, a content part other than text, an image or a
	// user's PDF inline (AnthropicPDF), an image type Anthropic does not
	// take. Anthropic-wire models are then no candidates: auto chose one
	// and its translation answered 400, or dropped audio and web search
	// unsaid (the SDK-feature probe).
	OpenAIWireOnly string
}

// ParseChat validates body and extracts the routing facts.
func ParseChat(body []byte) (Chat, error) {
	root, err := parseRoot(body, "chat completion")
	if err != nil {
		return Chat{}, err
	}
	c := Chat{API: APIChat}
	var model, messages, stream, streamOptions, maxTokens, maxCompletion, policy, n gjson.Result
	jsonscan.ForEach(root, func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			model = v
		case "n":
			n = v
		case "messages":
			messages = v
		case "stream":
			stream = v
		case "max_tokens":
			maxTokens = v
		case "max_completion_tokens":
			maxCompletion = v
		case "policy":
			policy = v
		case "tools", "functions":
			c.Tools = c.Tools || (v.IsArray() && len(v.Raw) > 2)
			if k.Str == "tools" {
				c.ToolList = v
				jsonscan.ForEach(v, func(_, t gjson.Result) bool {
					if typ := t.Get("type"); typ.Type == gjson.String && typ.Str != "function" {
						c.openAIOnly("tools of type " + apierr.Truncate(typ.Str, 32))
					}
					return c.OpenAIWireOnly == ""
				})
			} else {
				c.FunctionList = v
			}
		case "tool_choice":
			switch {
			case v.Type == gjson.String && v.Str != "auto" && v.Str != "required" && v.Str != "none",
				v.IsObject() && v.Get("type").Str != "function":
				c.openAIOnly("this tool_choice")
			}
			c.other(k, v)
		case "modalities":
			if strings.Contains(v.Raw, `"audio"`) {
				c.openAIOnly("audio output")
			}
			c.other(k, v)
		case "audio", "web_search_options":
			if v.Type != gjson.Null {
				c.openAIOnly(k.Str)
			}
			c.other(k, v)
		case "prediction":
			c.Prediction = v
		case "logprobs":
			c.Logprobs = v.Type == gjson.True
		case "stream_options":
			streamOptions = v
			c.otherText(k, v) // a provider gets the members beside include_usage
		case "response_format":
			c.ResponseFormatObj = v
			if t := v.Get("type"); t.Type == gjson.String {
				c.ResponseFormat = t.Str
			}
		case "stop":
			c.StopList = v
		case "safety_identifier":
			c.SafetyID = v
		case "prompt_cache_key":
			c.CacheKey = v
		case "user":
			c.UserRaw = v
			if v.Type == gjson.String && len(v.Str) <= 256 {
				c.User = v.Str
			}
		case "metadata":
			c.MetadataObj = v
			jsonscan.ForEach(v, func(mk, mv gjson.Result) bool {
				if mv.Type == gjson.String && len(mk.Str) <= 64 && len(mv.Str) <= 512 {
					if c.Metadata == nil {
						c.Metadata = map[string]string{}
					}
					c.Metadata[mk.Str] = mv.Str
				}
				return len(c.Metadata) < 16
			})
		default:
			// A member stellwerk has no use for, but a provider may read
			// (vLLM's chat_template_kwargs, a system member, web_search_
			// options): its text is classified as a parameter's.
			c.other(k, v)
		}
		return true
	})

	if err := c.setModel(model); err != nil {
		return Chat{}, err
	}

	if !messages.Exists() {
		return Chat{}, apierr.Invalid("missing_messages", "messages", "you must provide a messages parameter")
	}
	if !messages.IsArray() {
		return Chat{}, apierr.Invalid("invalid_type", "messages", "messages must be an array")
	}
	var bad *apierr.Error
	jsonscan.ForEach(messages, func(_, m gjson.Result) bool {
		if !m.IsObject() {
			bad = apierr.Invalid("invalid_type", "messages", "messages[%d] must be an object", c.Messages)
			return false
		}
		role := m.Get("role")
		if role.Type != gjson.String || role.Str == "" {
			p := "messages[" + strconv.Itoa(c.Messages) + "].role"
			bad = apierr.Invalid("invalid_value", p, "%s must be a non-empty string", p)
			return false
		}
		// The content's raw text, not m.Get's copy of it: only an array
		// of parts is read here, and decoding a long prompt's escapes
		// was half of parsing it.
		if content, ok := jsonscan.Member(m.Raw, "content"); ok && content[0] == '[' {
			jsonscan.ForEach(gjson.Parse(content), func(_, part gjson.Result) bool {
				switch t := part.Get("type").Str; t {
				case "image_url", "input_image":
					c.Vision = true
					c.Images++
					if t != "image_url" {
						break
					}
					if role.Str != "user" {
						c.openAIOnly("an image in a " + apierr.Truncate(role.Str, 16) + " message")
					}
					u := part.Get("image_url")
					if u.IsObject() {
						u = u.Get("url")
					}
					if why := notAnthropicImage(u.Str); why != "" {
						c.openAIOnly(why)
					}
				case "text", "refusal", "":
				default:
					switch t {
					case "input_audio":
						c.Audio = true
					case "file":
						c.Files = true
						f := part.Get("file")
						c.FileByID = c.FileByID || f.Get("file_id").Type == gjson.String
						if d := f.Get("file_data"); d.Type == gjson.String {
							if c.pdfs == nil {
								c.pdfs = new(PDFReader)
							}
							pages, pdf, ok := c.pdfs.Inline(d.Str)
							c.PDFPages += pages
							c.PDFUncounted = c.PDFUncounted || (pdf && !ok)
						}
						if _, ok := AnthropicPDF(f); ok && role.Str == "user" {
							return true // Anthropic's document block
						}
					}
					c.openAIOnly("content parts of type " + apierr.Truncate(t, 32))
				}
				return true
			})
		}
		c.Messages++
		return true
	})
	if bad != nil {
		return Chat{}, bad
	}
	if c.Messages == 0 {
		return Chat{}, apierr.Invalid("empty_messages", "messages", "messages must contain at least one message")
	}

	switch stream.Type {
	case gjson.Null:
		// absent or null: not streaming
	case gjson.True, gjson.False:
		c.Stream = stream.Bool()
	default:
		return Chat{}, apierr.Invalid("invalid_type", "stream", "stream must be a boolean")
	}
	usage, uerr := includeUsage(streamOptions)
	if uerr != nil {
		return Chat{}, uerr
	}
	c.IncludeUsage = usage
	for _, mt := range []struct {
		name string
		v    gjson.Result
	}{{"max_completion_tokens", maxCompletion}, {"max_tokens", maxTokens}} {
		if err := positiveInt(mt.v, mt.name, 1e9); err != nil {
			return Chat{}, err
		}
		if mt.v.Type == gjson.Number && c.MaxTokens == 0 {
			c.MaxTokens = int(mt.v.Num)
		}
	}
	if maxTokens.Type == gjson.Number && maxCompletion.Type == gjson.Number && maxTokens.Num != maxCompletion.Num {
		// One limit under two names: a provider reads one of them, and
		// which is its own. The budgets held the smaller while a provider
		// reading the other wrote the larger (the red-team probe).
		return Chat{}, apierr.Invalid("invalid_value", "max_tokens",
			"max_tokens (%d) and max_completion_tokens (%d) are one limit under two names; send one of them", int64(maxTokens.Num), int64(maxCompletion.Num))
	}
	// n choices are each billed: the budgets' worst case and the cost
	// estimate count them (OpenAI allows 1 to 128).
	if err := positiveInt(n, "n", 128); err != nil {
		return Chat{}, err
	}
	if n.Type == gjson.Number {
		c.Choices = int(n.Num)
	}
	c.MessageList = messages
	c.Policy = policy
	c.pdfs = nil
	return c, nil
}

// CheckBody checks a body that is not parsed here but passes on to a
// provider as sent (a Responses API request): a JSON object, not too deep,
// each key once — so that what was classified is what the provider reads.
// what names the request in the empty-body error.
func CheckBody(body []byte, what string) error {
	_, err := parseRoot(body, what)
	return err
}

// parseRoot checks what every endpoint's body must be: a JSON object, not
// too deep, each key once. what names the request in the empty-body error.
func parseRoot(body []byte, what string) (gjson.Result, error) {
	if len(body) == 0 {
		return gjson.Result{}, apierr.Invalid("invalid_request_body", "", "the request body is empty; send a JSON %s request", what)
	}
	deep, dup, lone := scanStructure(body)
	if deep {
		return gjson.Result{}, apierr.Invalid("invalid_request_body", "", "the request body is nested more than %d levels deep", MaxDepth)
	}
	if !gjson.ValidBytes(body) {
		if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) || bytes.HasPrefix(body, []byte("\xff\xfe")) || bytes.HasPrefix(body, []byte("\xfe\xff")) {
			// Windows tools write one (PowerShell 5's Out-File -Encoding
			// utf8): named, rather than "not valid JSON" (the HTTP probe).
			return gjson.Result{}, apierr.Invalid("invalid_json", "", "the request body starts with a byte order mark, which JSON does not allow (RFC 8259); send UTF-8 without one")
		}
		return gjson.Result{}, apierr.Invalid("invalid_json", "", "the request body is not valid JSON")
	}
	// An escaped surrogate without its pair is no character at all, and
	// each parser reads it its own way: gjson drops the character after
	// it, Go's, Python's and JavaScript's keep it — "AKIA\ud800\u0055…"
	// was classified without the U a provider read (the red-team probe).
	if lone {
		return gjson.Result{}, apierr.Invalid("invalid_json", "", "the request body has a \\u escape of a lone surrogate (a \\uD800–\\uDFFF without its pair), which is no character; send the text as UTF-8")
	}
	// JSON between systems is UTF-8 (RFC 8259). Bytes that are not would
	// be read one way here and another by a provider's parser (Go's and
	// JavaScript's turn each into U+FFFD, so two keys that differ only
	// there become one key twice): refuse them as every provider does.
	if !utf8.Valid(body) {
		return gjson.Result{}, apierr.Invalid("invalid_json", "", "the request body is not valid UTF-8; JSON must be sent as UTF-8")
	}
	if dup != nil {
		// A provider that reads the last copy (most JSON parsers) would
		// see another request than the one classified: refuse, never guess.
		where := "the request body"
		if dup.in != "" {
			where = dup.in
		}
		if dup.casing {
			return gjson.Result{}, apierr.Invalid("invalid_key", dup.param(),
				"key %q in %s is not spelled in lower case ASCII, as every parameter is; a provider may read it as %q, which stellwerk would not have checked",
				apierr.Truncate(dup.key, 64), apierr.Truncate(where, 200), apierr.Truncate(strings.ToLower(dup.key), 64))
		}
		return gjson.Result{}, apierr.Invalid("duplicate_field", dup.param(), "duplicate key %q in %s; send each key once",
			apierr.Truncate(dup.key, 64), apierr.Truncate(where, 200))
	}
	// The parsed values are views of body, not a copy of it (32 KB of a
	// 32 KB request): a request body is never written once it is parsed —
	// the audit record keeps the same bytes for replay.
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !root.IsObject() {
		return gjson.Result{}, apierr.Invalid("invalid_request_body", "", "the request body must be a JSON object")
	}
	return root, nil
}

// setModel checks the model member and reads a named route from it.
// other keeps member k for the classifier when it has text (a string, an
// object, an array), or when its name is more than lower-case letters and
// underscores (jsonscan.PlainName: a name the provider gets too): Others.
func (c *Chat) other(k, v gjson.Result) {
	if v.Type == gjson.String || v.IsObject() || v.IsArray() || !jsonscan.PlainName(k.Str) {
		c.Others = append(c.Others, jsonscan.KeyValue{Key: k.Str, Value: v})
	}
}

// otherText keeps an object whose members a provider reads beside the one
// stellwerk reads (stream_options beside include_usage) when one of them
// has text: Others.
func (c *Chat) otherText(k, v gjson.Result) {
	if !v.IsObject() {
		return
	}
	text := false
	jsonscan.ForEach(v, func(_, m gjson.Result) bool {
		text = m.Type == gjson.String || m.IsObject() || m.IsArray()
		return !text
	})
	if text {
		c.Others = append(c.Others, jsonscan.KeyValue{Key: k.Str, Value: v})
	}
}

func (c *Chat) setModel(model gjson.Result) *apierr.Error {
	switch {
	case !model.Exists():
		return apierr.Invalid("missing_model", "model", "you must provide a model parameter (a catalog model id or \"auto\")")
	case model.Type != gjson.String:
		return apierr.Invalid("invalid_type", "model", "model must be a string")
	case model.Str == "":
		return apierr.Invalid("missing_model", "model", "model must not be empty")
	}
	c.Model = model.Str
	if rest, ok := strings.CutPrefix(c.Model, RoutePrefix); ok {
		var err *apierr.Error
		if c.Route, c.RouteVersion, err = parseRoute(rest); err != nil {
			return err
		}
	}
	return nil
}

// MaxDepth bounds JSON nesting. Chat requests, tool schemas included, stay
// far below it; a body of millions of brackets would otherwise cost seconds.
const MaxDepth = 128

// dupKey is the first key found twice in one object, or (casing) spelled
// with capitals or other than ASCII where a provider may match keys
// without regard to case.
type dupKey struct {
	key    string // decoded
	in     string // path of the object: messages[0].content[1]; "" for the body
	casing bool
}

// lowerASCII reports whether k has no capital and no byte past ASCII:
// the only spelling of an OpenAI or Anthropic parameter, and one no
// provider's case-insensitive match makes another key of.
func lowerASCII(body []byte, k keyRef) bool {
	s := k.text(body)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// param is the key's path, the OpenAI error's param.
func (d *dupKey) param() string {
	if d.in == "" {
		return d.key
	}
	return d.in + "." + d.key
}

// frame is one open object or array of scanStructure.
type frame struct {
	obj       bool
	expectKey bool            // obj: the next string is a key
	keys      int             // obj: index of its first key in the key stack
	set       map[string]bool // obj: its keys, once it has many
	index     int             // array: index of the current element
	key       keyRef          // obj: the current key
	// fold: obj is the request, a message or a content part, whose keys
	// are compared as Go's encoding/json matches struct fields — without
	// regard to case ("Messages" is "messages" to a provider written in
	// Go, which reads the last one) — rather than byte for byte.
	fold bool
}

// keyRef is a key in the body: body[start:end] between the quotes, or its
// decoded form when it has escapes.
type keyRef struct {
	start, end int
	dec        string
	esc        bool
}

// linearKeys is how many keys of one object are compared pairwise before
// they go into a set.
const linearKeys = 16

// scanStructure reads body once, skipping string contents, and reports
// whether it nests deeper than MaxDepth and the first key that appears
// twice in one object, anywhere (decoded, so "r\u006fle" and "role" are the
// same key; in the request, its messages and their content parts, keys
// that differ only in case too: foldsKeys). It runs before the body is
// known to be valid JSON: on invalid input it stays linear and never
// panics, and its duplicate is then ignored.
func scanStructure(body []byte) (deep bool, dup *dupKey, lone bool) {
	var stackBuf [32]frame
	var keyBuf [64]keyRef
	stack, keys := stackBuf[:0], keyBuf[:0]
	lone = LoneSurrogate(body)
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '"':
			start := i + 1
			end, esc := skipString(body, start)
			i = end
			if (dup != nil && !dup.casing) || len(stack) == 0 {
				continue // the first duplicate, or a casing problem until one
			}
			top := &stack[len(stack)-1]
			if !top.obj || !top.expectKey {
				continue
			}
			top.expectKey = false
			k := keyRef{start: start, end: min(end, len(body)), esc: esc}
			if esc && end < len(body) {
				k.dec = gjson.ParseBytes(body[start-1 : end+1]).Str
			}
			top.key = k
			if seenKey(body, top, keys, k) {
				dup = &dupKey{key: k.text(body)}
				dup.in = pathOf(body, stack)
				continue
			}
			if top.fold && !lowerASCII(body, k) && dup == nil {
				// Alone, "Tools" is no key stellwerk reads, and the tools a
				// provider in Go reads (found by a helper: a secret and an
				// injection in them passed unclassified). It is kept among
				// the keys: the same key in another case after it is a
				// duplicate, which the admin API refuses as well.
				dup = &dupKey{key: k.text(body), casing: true}
				dup.in = pathOf(body, stack)
			}
			keys = append(keys, k)
			if top.set != nil {
				top.set[top.setKey(body, k)] = true
			}
		case '{', '[':
			if len(stack) >= MaxDepth {
				return true, nil, lone
			}
			obj := body[i] == '{'
			stack = append(stack, frame{obj: obj, expectKey: obj, keys: len(keys), fold: obj && foldsKeys(body, stack)})
		case '}', ']':
			if len(stack) > 0 {
				keys = keys[:stack[len(stack)-1].keys]
				stack = stack[:len(stack)-1]
			}
		case ',':
			if len(stack) > 0 {
				top := &stack[len(stack)-1]
				if top.obj {
					top.expectKey = true
				} else {
					top.index++
				}
			}
		}
	}
	return false, dup, lone
}

// LoneSurrogate reports whether a body has a \u escape of a surrogate
// that is not a high one followed by an escaped low one. A backslash in
// valid JSON is in a string and starts an escape of two bytes (six for
// \u): read from the start, pair by pair, the body's backslashes tell
// themselves apart from escaped ones; one IndexByte per escape.
func LoneSurrogate(body []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], '\\')
		if j < 0 {
			return false
		}
		j += i
		if j+1 >= len(body) {
			return false
		}
		if body[j+1] != 'u' {
			i = j + 2 // \n, \", \\: the escaped byte is no backslash of its own
			continue
		}
		r, ok := hex4(body, j+2)
		if !ok {
			i = j + 2 // not valid JSON: gjson.ValidBytes refuses it
			continue
		}
		i = j + 6
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		case r >= 0xD800 && r <= 0xDBFF:
			if i+1 >= len(body) || body[i] != '\\' || body[i+1] != 'u' {
				return true
			}
			if lo, ok := hex4(body, i+2); !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
}

// hex4 reads four hex digits at s[i:].
func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skipString returns the index of the quote closing the string that starts
// at body[start] (len(body) when there is none) and whether it has escapes.
func skipString(body []byte, start int) (int, bool) {
	esc := false
	for i := start; i < len(body); {
		q := bytes.IndexByte(body[i:], '"')
		if q < 0 {
			return len(body), esc
		}
		q += i
		if !esc && bytes.IndexByte(body[i:q], '\\') >= 0 {
			esc = true
		}
		if !escaped(body, q) { // body[start] is a quote: the backslashes before q end there
			return q, esc
		}
		i = q + 1
	}
	return len(body), esc
}

func (k keyRef) text(body []byte) string {
	if k.esc {
		return k.dec
	}
	return string(body[k.start:k.end])
}

// seenKey reports whether the object already has key k. A large object's
// keys go into a set, so an object with many keys stays linear.
func seenKey(body []byte, top *frame, keys []keyRef, k keyRef) bool {
	own := keys[top.keys:]
	if top.set == nil && len(own) < linearKeys {
		for _, o := range own {
			switch {
			case top.fold:
				if strings.EqualFold(o.text(body), k.text(body)) {
					return true
				}
			case o.esc || k.esc:
				if o.text(body) == k.text(body) {
					return true
				}
			case bytes.Equal(body[o.start:o.end], body[k.start:k.end]):
				return true
			}
		}
		return false
	}
	if top.set == nil {
		top.set = make(map[string]bool, 2*len(own))
		for _, o := range own {
			top.set[top.setKey(body, o)] = true
		}
	}
	return top.set[top.setKey(body, k)]
}

// setKey is k as the object's key set holds it: folded when the object's
// keys are compared without regard to case.
func (f *frame) setKey(body []byte, k keyRef) string {
	if f.fold {
		return foldKey(k.text(body))
	}
	return k.text(body)
}

// foldKey maps every letter to the smallest of its case variants
// (unicode.SimpleFold's orbit), so two keys strings.EqualFold holds equal
// map to one string: "Messages", "MESSAGES" and "meſſages" (ſ is s to
// Go's encoding/json) all to "MESSAGES".
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// foldsKeys says whether the object opening on top of stack is one whose
// keys a provider's parser may match without regard to case: the request
// itself, a message (messages[i] of chat, input[i] of the Responses API),
// a message's content part, or a part's file, image or audio object. Free-form objects (metadata, a tool's JSON
// schema) keep their keys byte for byte, as maps do in every parser.
func foldsKeys(body []byte, stack []frame) bool {
	switch len(stack) {
	case 0:
		return true
	case 2, 4, 5:
		if !stack[0].obj || stack[1].obj {
			return false
		}
		if list := stack[0].key.text(body); list != "messages" && list != "input" {
			return false
		}
		if len(stack) == 2 {
			return true
		}
		if !stack[2].obj || stack[3].obj || stack[2].key.text(body) != "content" {
			return false
		}
		if len(stack) == 4 {
			return true
		}
		// A part's file, image or audio object: "File_Data" beside
		// "file_data" was read by a provider in Go and by no classifier
		// (an attacker's pass).
		switch stack[4].key.text(body) {
		case "file", "image_url", "input_audio", "video_url":
			return stack[4].obj
		}
	}
	return false
}

// pathOf renders the path of the innermost open object: messages[0].content[1].
func pathOf(body []byte, stack []frame) string {
	var b strings.Builder
	for i := 0; i+1 < len(stack); i++ {
		f := &stack[i]
		if f.obj {
			k := f.key.text(body)
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		} else {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		}
	}
	return b.String()
}

// RoutePrefix marks a model field that names a route (docs/routes.md).
const RoutePrefix = "route:"

// RouteOf reads a model field naming a route: route:<name>[@<N>]; false
// for any other model.
func RouteOf(model string) (name string, version int64, ok bool) {
	rest, found := strings.CutPrefix(model, RoutePrefix)
	if !found {
		return "", 0, false
	}
	name, version, err := parseRoute(rest)
	return name, version, err == nil
}

// parseRoute reads <name>, <name>@<N> or <name>@v<N>. A name is lower-case
// letters, digits, - and _, at most 63, starting with a letter or digit
// (flow.NameRE); a version is a positive decimal number.
func parseRoute(s string) (string, int64, *apierr.Error) {
	name, ver, pinned := strings.Cut(s, "@")
	bad := func() (string, int64, *apierr.Error) {
		return "", 0, apierr.Invalid("invalid_route", "model",
			"model %q is not a route reference; use route:<name> or route:<name>@<version>", apierr.Truncate(RoutePrefix+s, 128))
	}
	if name == "" || len(name) > 63 {
		return bad()
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '-' || c == '_')) {
			return bad()
		}
	}
	if !pinned {
		return name, 0, nil
	}
	ver = strings.TrimPrefix(ver, "v")
	if ver == "" || len(ver) > 18 || ver[0] == '0' {
		return bad()
	}
	var n int64
	for i := 0; i < len(ver); i++ {
		if ver[i] < '0' || ver[i] > '9' {
			return bad()
		}
		n = n*10 + int64(ver[i]-'0')
	}
	return name, n, nil
}

// openAIOnly records the first thing only an OpenAI-wire provider can take.
func (c *Chat) openAIOnly(what string) {
	if c.OpenAIWireOnly == "" {
		c.OpenAIWireOnly = what
	}
}

// AnthropicImageTypes are the media types Anthropic accepts for base64
// images (translate.ToAnthropicRequest, MessagesToChat).
var AnthropicImageTypes = [...]string{"image/jpeg", "image/png", "image/gif", "image/webp"}

// notAnthropicImage says why an image URL is not one the translation to
// Anthropic takes (translate.ToAnthropicRequest refuses it), "" when it
// is: an http(s) URL, or a base64 data URL of a JPEG, PNG, GIF or WebP
// image without parameters. The reason names the image's type, so a
// refusal says what to send instead (the multimodal probe: "this image's
// type or URL" left the client guessing).
func notAnthropicImage(u string) string {
	if len(u) >= 8 && (strings.EqualFold(u[:7], "http://") || strings.EqualFold(u[:8], "https://")) {
		return ""
	}
	meta, _, ok := strings.Cut(strings.TrimPrefix(u, "data:"), ",")
	if !ok || !strings.HasPrefix(u, "data:") {
		return "an image URL that is neither http(s) nor a base64 data URL"
	}
	mt, b64 := strings.CutSuffix(meta, ";base64")
	mt = strings.ToLower(mt)
	switch {
	case !b64:
		return "an image data URL that is not base64"
	case mt == "image/jpg" || slices.Contains(AnthropicImageTypes[:], mt): // the translation takes jpg as jpeg
		return ""
	}
	return "an image of type " + apierr.Truncate(mt, 32) + " (Anthropic models take image/jpeg, image/png, image/gif or image/webp)"
}

// AnthropicPDF is the base64 data of a chat file part's file object that
// the translation to Anthropic's Messages API carries as a document block:
// a PDF sent inline, by nothing but its file_data and filename. False for
// any other (a file by id, another type, a member the block has no field
// for).
func AnthropicPDF(f gjson.Result) (string, bool) {
	if !f.IsObject() {
		return "", false
	}
	var data string
	ok := true
	f.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "file_data":
			const prefix = "data:application/pdf;base64,"
			if v.Type != gjson.String || len(v.Str) <= len(prefix) || !strings.EqualFold(v.Str[:len(prefix)], prefix) {
				ok = false
			} else {
				data = v.Str[len(prefix):]
			}
		case "filename":
			ok = v.Type == gjson.String || v.Type == gjson.Null
		default:
			ok = false
		}
		return ok
	})
	return data, ok && data != ""
}
