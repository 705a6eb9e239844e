package classify

import (
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/dataurl"
	"github.com/stellwerk/stellwerk/internal/jsonscan"
)

// Segment is one piece of text a request carries: a message's content (its
// text parts joined), a tool call's arguments, a tool definition's
// description or parameter schema, a name. Finding offsets are byte offsets
// into Segment.Text.
type Segment struct {
	Message int    // index into messages; -1 for text outside them (tools, response_format, prediction)
	Role    string // the message's role: system, developer, user, assistant, tool, function; "" outside messages
	// field and key locate the text (see Field); key is "" or the last
	// member name, kept apart so that no path is built unless needed.
	field, key string
	Text       string
	// content is the content array's JSON when Text joins its parts'
	// text; the parts are placed in Text (Parts) only for a finding, so a
	// request of many parts costs no memory per part.
	content string
	// prompt marks an embeddings input's or completions prompt's string,
	// which is read as a user turn's content.
	prompt bool
	// param marks a request parameter's text (user, metadata, stop): read
	// for personal data and secrets, not counted as prompt tokens.
	param bool
}

// Field locates the text: inside a message relative to it (content,
// tool_calls[0].function.arguments, name), outside from the body root
// (tools[1].function.description, response_format.json_schema.schema).
func (s *Segment) Field() string {
	if s.key == "" {
		return s.field
	}
	return s.field + "." + s.key
}

// isContent reports whether the segment is a message's content.
func (s *Segment) isContent() bool {
	return s.Message >= 0 && s.key == "" && (s.field == "content" || s.prompt)
}

// PartSpan places one content part inside a joined content segment.
type PartSpan struct {
	Index int    // the part's index in the content array
	Key   string // the part's member holding the text: text, refusal; "" for a bare string part
	Start int    // byte offset in the segment's Text
}

// Scan states and the caps that can stop a scan early. A scan that stops is
// "truncated": the request carries text no detector has read, and the
// default rules and the shipped policy treat it as restricted and high risk
// (docs/classify.md).
const (
	ScanComplete  = "complete"
	ScanTruncated = "truncated"

	LimitSegments = "segments"  // more than MaxSegments pieces of text
	LimitBytes    = "bytes"     // more than MaxScanBytes bytes of text
	LimitTokenIDs = "token_ids" // an embeddings input or completions prompt of token ids, which no detector reads
	LimitFile     = "file"      // a text file sent inline whose data URL does not decode
)

// MaxSegments bounds the pieces of text read per request (a message's
// content, each content part, each field of a tool call or a tool
// definition): an adversarial request of millions of tiny parts costs a
// bounded amount of work. Real requests stay far below it.
const MaxSegments = 1 << 16

// MaxScanBytes bounds the text bytes read per request. It is twice the
// default envoy.max_request_bytes, so only a raised body limit can reach it.
const MaxScanBytes = 16 << 20

// extraction is every segment of a request and whether it is all of them.
type extraction struct {
	segs   []Segment
	pieces int
	bytes  int
	limit  string // the first cap hit, "" when none
	turns  int    // messages, or input strings
	opaque bool   // the input is token ids
	// unreadFile: an inline text file did not decode (LimitFile, once
	// the rest is read)
	unreadFile bool
	// media counts the parts no detector reads, by kind (Result.Unread).
	media [len(UnreadKinds)]int
}

// Segments returns every text segment of a request, appended to dst, and
// the cap that stopped the scan ("" when the scan is complete).
//
// Inside a message it reads every member but role: string content and the
// text of every content part (text, refusal, bare strings, joined into one
// segment so a value split across parts is still one value), other part
// members (image, audio and file payloads are skipped, a file's name is
// read), tool_calls (id, function name and arguments), the legacy
// function_call, name, refusal, and any other member, whose JSON text is
// read when it is an object. Outside messages it reads tools and the legacy
// functions (name, description, the parameters schema as JSON text),
// response_format (json_schema name, description, schema) and prediction.
func Segments(req Request, dst []Segment) ([]Segment, string) {
	x := extraction{segs: dst}
	x.request(req)
	return x.segs, x.cap()
}

// cap is the limit that truncated the scan, "" when it is complete: the
// first cap hit, else what the scan went past without reading (token ids,
// an inline file that did not decode).
func (x *extraction) cap() string {
	switch {
	case x.limit != "":
		return x.limit
	case x.opaque:
		return LimitTokenIDs
	case x.unreadFile:
		return LimitFile
	}
	return ""
}

func (x *extraction) request(req Request) {
	if req.Input.Exists() {
		x.input(req.Input, req.InputField)
		if x.limit == "" && req.Suffix.Type == gjson.String && x.piece() {
			x.add(Segment{Message: x.turns, Role: "user", field: "suffix", Text: req.Suffix.Str, prompt: true})
			x.turns++
		}
	}
	x.messages(req.Messages)
	if x.limit == "" {
		x.list(req.Tools, "tools")
	}
	if x.limit == "" {
		x.list(req.Functions, "functions")
	}
	if x.limit == "" && req.ResponseFormat.Exists() {
		x.object(-1, "", "response_format", req.ResponseFormat, true)
	}
	if x.limit == "" && req.Prediction.Exists() {
		x.object(-1, "", "prediction", req.Prediction, false)
	}
	// Parameters the provider gets beside the prompt.
	if x.limit == "" && req.User.Exists() {
		x.param(-1, "", "user", "", req.User)
	}
	if x.limit == "" && req.Metadata.IsObject() {
		jsonscan.ForEach(req.Metadata, func(k, v gjson.Result) bool {
			x.name(-1, "", "metadata", k.Str)
			x.param(-1, "", "metadata", k.Str, v)
			return x.limit == ""
		})
	}
	if x.limit == "" && req.Stop.Exists() {
		x.param(-1, "", "stop", "", req.Stop)
	}
	if x.limit == "" && req.SafetyID.Exists() {
		x.param(-1, "", "safety_identifier", "", req.SafetyID)
	}
	if x.limit == "" && req.CacheKey.Exists() {
		x.param(-1, "", "prompt_cache_key", "", req.CacheKey)
	}
	for _, o := range req.Others {
		if x.limit != "" {
			break
		}
		x.name(-1, "", "", o.Key)
		x.param(-1, "", o.Key, "", o.Value)
	}
	for _, h := range req.Headers {
		if x.limit != "" {
			break
		}
		x.param(-1, "", "headers", h.Name, gjson.Result{Type: gjson.String, Str: h.Value})
	}
}

// name reads a member's name the client chose (a metadata key, an extra
// parameter's name) as a parameter's text: the provider gets it as it
// gets the value, and an IBAN or a token in it is no less sent. Names
// spelled like parameters (lower-case letters and underscores) carry
// neither and are skipped, so a request pays nothing for its usual
// members. The segment's field is the object's, never the name: a
// finding's place must not repeat the secret.
func (x *extraction) name(msg int, role, field, k string) {
	if jsonscan.PlainName(k) || !x.piece() {
		return
	}
	x.add(Segment{Message: msg, Role: role, field: field, Text: k, param: true})
}

// param reads a value as value does, as a parameter's text: searched for
// personal data and secrets, neither counted as prompt tokens nor scored
// for injection, nor read by the task model.
func (x *extraction) param(msg int, role, field, key string, v gjson.Result) {
	n := len(x.segs)
	x.value(msg, role, field, key, v)
	for i := n; i < len(x.segs); i++ {
		x.segs[i].param = true
	}
}

// link reads a link the provider gets as a parameter, and once more
// percent-decoded when it is percent-encoded: a query string writes an
// address's @ as %40.
func (x *extraction) link(msg int, role, field string, u gjson.Result) {
	x.param(msg, role, field, "", u)
	if strings.IndexByte(u.Str, '%') < 0 || x.limit != "" {
		return
	}
	if d, err := url.QueryUnescape(u.Str); err == nil && d != u.Str {
		x.param(msg, role, field, "", gjson.Result{Type: gjson.String, Str: d})
	}
}

// piece accounts for one more piece of text, false when the cap is hit.
func (x *extraction) piece() bool {
	if x.limit != "" {
		return false
	}
	if x.pieces >= MaxSegments {
		x.limit = LimitSegments
		return false
	}
	x.pieces++
	return true
}

// file reads a text file sent inline as a data URL, as much as the byte
// budget allows. One the classifiers cannot decode (a text type whose
// payload is not base64) is text the model may read and they have not:
// the scan is truncated (LimitFile; the rest is still read), as it is for
// a file cut at the cap.
func (x *extraction) file(msg int, role, field, url string) {
	text, st := dataurl.Text(url, MaxScanBytes-x.bytes)
	switch st {
	case dataurl.NotText: // a PDF, an image: its content is not read
		x.media[unreadFile]++
	case dataurl.Unreadable:
		x.unreadFile = true
	case dataurl.Read, dataurl.Cut:
		if x.piece() {
			x.add(Segment{Message: msg, Role: role, field: field, Text: text})
			if st == dataurl.Cut {
				x.limit = LimitBytes
			}
		}
	}
}

// add appends a segment, cut to what is left of the byte budget.
func (x *extraction) add(s Segment) {
	if s.Text == "" {
		return
	}
	if left := MaxScanBytes - x.bytes; len(s.Text) > left {
		x.limit = LimitBytes
		if left <= 0 {
			return
		}
		s.Text = s.Text[:left]
	}
	x.bytes += len(s.Text)
	x.segs = append(x.segs, s)
}

func (x *extraction) messages(msgs gjson.Result) {
	jsonscan.ForEach(msgs, func(_, m gjson.Result) bool {
		idx := x.turns
		x.turns++
		if x.limit != "" { // keep counting turns for the token estimate
			return true
		}
		if !m.IsObject() {
			x.value(idx, "", "", "", m)
			return true
		}
		// Duplicate members are refused by request parsing, so the first
		// role is the only one.
		role := m.Get("role").Str
		jsonscan.ForEach(m, func(k, v gjson.Result) bool {
			switch k.Str {
			case "role":
			case "content":
				x.content(idx, role, "content", v)
			case "tool_calls":
				i := -1
				jsonscan.ForEach(v, func(_, call gjson.Result) bool {
					i++
					x.object(idx, role, "tool_calls["+strconv.Itoa(i)+"]", call, true)
					return x.limit == ""
				})
			case "function_call":
				x.object(idx, role, "function_call", v, false)
			default:
				x.name(idx, role, "", k.Str)
				x.value(idx, role, k.Str, "", v)
			}
			return x.limit == ""
		})
		return true
	})
}

// input reads an embeddings input or a completions prompt: each string is
// a turn of its own, read as a user's message content (Finding.Message is
// its index in the array, Field the member: input, input[2]). Token ids are
// not text: the scan is marked truncated rather than passed as read.
func (x *extraction) input(v gjson.Result, field string) {
	if v.Type == gjson.String {
		if x.piece() {
			x.add(Segment{Message: 0, Role: "user", field: field, Text: v.Str, prompt: true})
		}
		x.turns++
		return
	}
	i := -1
	jsonscan.ForEach(v, func(_, e gjson.Result) bool {
		i++
		x.turns++
		switch {
		case e.Type == gjson.String:
			if x.piece() {
				x.add(Segment{Message: i, Role: "user", field: field + "[" + strconv.Itoa(i) + "]", Text: e.Str, prompt: true})
			}
		case e.Type == gjson.Number || e.IsArray():
			x.opaque = true
		default:
			x.value(i, "user", field+"["+strconv.Itoa(i)+"]", "", e)
		}
		return x.limit == ""
	})
}

// content reads a content member: a string, an array of parts, or (which
// no provider documents, but it costs nothing to read) a single part.
func (x *extraction) content(msg int, role, field string, v gjson.Result) {
	switch {
	case v.Type == gjson.String:
		if x.piece() {
			x.add(Segment{Message: msg, Role: role, field: field, Text: v.Str})
		}
	case v.IsArray():
		x.parts(msg, role, field, v)
	default:
		x.value(msg, role, field, "", v)
	}
}

// parts joins the text of a content array's parts into one segment, without
// a separator (some providers concatenate parts that way), and reads every
// other member of a part as its own segment.
func (x *extraction) parts(msg int, role, field string, v gjson.Result) {
	var (
		first string
		b     []byte
		n     int // text parts joined
	)
	join := func(s string) {
		switch {
		case s == "":
			return
		case n == 0:
			first = s
		case n == 1:
			b = append(append(make([]byte, 0, 2*(len(first)+len(s))), first...), s...)
		default:
			b = append(b, s...)
		}
		n++
	}
	i := -1
	jsonscan.ForEach(v, func(_, p gjson.Result) bool {
		i++
		if !x.piece() {
			return false
		}
		switch {
		case p.Type == gjson.String: // some clients send bare strings
			join(p.Str)
		case p.IsObject():
			jsonscan.ForEach(p, func(k, pv gjson.Result) bool {
				switch k.Str {
				case "type":
					if pv.Str == "input_image" { // a Responses image by file_id (translate)
						x.media[unreadImage]++
					}
				case "text", "refusal":
					if pv.Type == gjson.String {
						join(pv.Str) // as partTexts reads it
						return true
					}
					x.value(msg, role, partField(field, i, k.Str), "", pv)
				case "image_url":
					// A data URL is media, not text; a link is sent as it
					// is, and a query string can carry personal data. The
					// image itself is not read. A data URL that holds no
					// image (data:text/plain,…) is a file, read as one (the
					// red-team probe hid a key in one).
					url := pv.Get("url")
					if url.Type != gjson.String {
						url = pv
					}
					if rest, ok := strings.CutPrefix(url.Str, "data:"); ok && url.Type == gjson.String && !strings.HasPrefix(strings.ToLower(rest), "image/") {
						x.file(msg, role, partField(field, i, "image_url"), url.Str)
						break
					}
					x.media[unreadImage]++
					if u := pv.Get("url"); u.Type == gjson.String && !strings.HasPrefix(u.Str, "data:") {
						x.link(msg, role, partField(field, i, "image_url.url"), u)
					} else if pv.Type == gjson.String && !strings.HasPrefix(pv.Str, "data:") {
						x.link(msg, role, partField(field, i, "image_url"), pv)
					}
				case "input_audio":
					x.media[unreadAudio]++ // media payloads (base64) are not text
				case "video_url":
					x.media[unreadVideo]++
				case "file":
					if name := pv.Get("filename"); name.Type == gjson.String {
						x.value(msg, role, partField(field, i, "file.filename"), "", name)
					}
					// A text file sent inline is text the model reads (a CSV
					// of customers): decoded, as much as the scan may read.
					if d := pv.Get("file_data"); d.Type == gjson.String {
						x.file(msg, role, partField(field, i, "file.file_data"), d.Str)
					} else {
						x.media[unreadFile]++ // by file_id: the provider reads it, stellwerk cannot
					}
				default:
					x.name(msg, role, partField(field, i, ""), k.Str)
					x.value(msg, role, partField(field, i, k.Str), "", pv)
				}
				return x.limit == ""
			})
		default:
			x.value(msg, role, partField(field, i, ""), "", p)
		}
		return x.limit == ""
	})
	switch n {
	case 0:
	case 1:
		x.add(Segment{Message: msg, Role: role, field: field, Text: first, content: v.Raw})
	default:
		x.add(Segment{Message: msg, Role: role, field: field, Text: string(b), content: v.Raw})
	}
}

// partTexts calls fn with each non-empty text a content part carries, in
// the order parts joins them.
func partTexts(p gjson.Result, fn func(key, text string)) {
	if p.Type == gjson.String {
		if p.Str != "" {
			fn("", p.Str)
		}
		return
	}
	if !p.IsObject() {
		return
	}
	jsonscan.ForEach(p, func(k, pv gjson.Result) bool {
		if (k.Str == "text" || k.Str == "refusal") && pv.Type == gjson.String && pv.Str != "" {
			fn(k.Str, pv.Str)
		}
		return true
	})
}

// Parts places each content part in Text when the segment joins a content
// array's parts (nil otherwise): part Parts()[i].Index starts at byte
// Parts()[i].Start. It reads the array again; Classify calls it only for a
// segment with a finding.
func (s *Segment) Parts() []PartSpan {
	if s.content == "" {
		return nil
	}
	content := gjson.Parse(s.content)
	count := 0
	jsonscan.ForEach(content, func(_, p gjson.Result) bool {
		partTexts(p, func(string, string) { count++ })
		return true
	})
	spans := make([]PartSpan, 0, count)
	n, i := 0, -1
	jsonscan.ForEach(content, func(_, p gjson.Result) bool {
		i++
		partTexts(p, func(key, text string) {
			spans = append(spans, PartSpan{Index: i, Key: key, Start: n})
			n += len(text)
		})
		return n < len(s.Text)
	})
	return spans
}

func partField(field string, i int, key string) string {
	f := field + "[" + strconv.Itoa(i) + "]"
	if key != "" {
		f += "." + key
	}
	return f
}

// list reads an array of tool definitions.
func (x *extraction) list(v gjson.Result, field string) {
	i := -1
	jsonscan.ForEach(v, func(_, t gjson.Result) bool {
		i++
		x.object(-1, "", field+"["+strconv.Itoa(i)+"]", t, true)
		return x.limit == ""
	})
}

// object reads every member of an object but type as a segment; with
// descend, the members of a nested function, custom or json_schema object
// too (tool definitions, tool calls, response_format).
func (x *extraction) object(msg int, role, field string, v gjson.Result, descend bool) {
	if !v.IsObject() {
		x.value(msg, role, field, "", v)
		return
	}
	jsonscan.ForEach(v, func(k, mv gjson.Result) bool {
		switch {
		case k.Str == "type":
		case descend && mv.IsObject() && (k.Str == "function" || k.Str == "custom" || k.Str == "json_schema"):
			x.object(msg, role, field+"."+k.Str, mv, false)
		case k.Str == "content":
			x.content(msg, role, field+".content", mv)
		default:
			x.name(msg, role, field, k.Str)
			x.value(msg, role, field, k.Str, mv)
		}
		return x.limit == ""
	})
}

// value reads a string as it is and an object or array as its JSON text
// (string escapes decoded, so a schema reads as the model reads it); other
// values carry no text. The segment's field is field.key ("" key: field).
func (x *extraction) value(msg int, role, field, key string, v gjson.Result) {
	var text string
	switch {
	case v.Type == gjson.String:
		text = v.Str
	case v.IsObject() || v.IsArray():
		if len(v.Raw) <= 2 {
			return
		}
		text = unescapeJSON(v.Raw)
	default:
		return
	}
	if text != "" && x.piece() {
		x.add(Segment{Message: msg, Role: role, field: field, key: key, Text: text})
	}
}

// unescapeJSON returns JSON text with the escapes in its strings decoded,
// for detectors to read what a model reads. Text without a backslash is
// returned as it is.
func unescapeJSON(raw string) string {
	if strings.IndexByte(raw, '\\') < 0 {
		return raw
	}
	var b strings.Builder
	b.Grow(len(raw))
	for len(raw) > 0 {
		q := strings.IndexByte(raw, '"')
		if q < 0 {
			b.WriteString(raw)
			break
		}
		b.WriteString(raw[:q])
		raw = raw[q:]
		end := jsonscan.StringEnd(raw, 0)
		if end < 0 { // unterminated: keep as is
			b.WriteString(raw)
			break
		}
		b.WriteByte('"')
		b.WriteString(jsonscan.String(raw[:end]).Str)
		b.WriteByte('"')
		raw = raw[end:]
	}
	return b.String()
}

// locate maps a span of the segment's text to the field holding it: the
// content part when the span lies inside one, else the segment's field.
// parts caches Parts() across the findings of one segment.
func (s *Segment) locate(start, end int, parts *[]PartSpan) (string, int, int) {
	if s.content == "" {
		return s.Field(), start, end
	}
	if *parts == nil {
		*parts = s.Parts()
	}
	ps := *parts
	i := sort.Search(len(ps), func(i int) bool { return ps[i].Start > start }) - 1
	if i < 0 {
		return s.field, start, end
	}
	p := ps[i]
	lim := len(s.Text)
	if i+1 < len(ps) {
		lim = min(lim, ps[i+1].Start)
	}
	if end > lim {
		return s.field, start, end
	}
	return partField(s.field, p.Index, p.Key), start - p.Start, end - p.Start
}
