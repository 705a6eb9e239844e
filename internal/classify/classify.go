// Package classify scores a chat request before any model sees it: task,
// complexity, language, personal data, secrets, prompt injection, and the
// sensitivity and risk derived from them. Everything runs in process, in
// one pass per detector, in time linear in the request size; no model is
// called or downloaded.
//
// Findings carry positions, never values: a Result can be logged, audited
// and shown to a caller without leaking what it found.
package classify

import (
	"sync"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/classify/injection"
	"github.com/stellwerk/stellwerk/internal/classify/pii"
	"github.com/stellwerk/stellwerk/internal/classify/secrets"
	"github.com/stellwerk/stellwerk/internal/classify/task"
	"github.com/stellwerk/stellwerk/internal/classify/terms"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/jsonscan"
)

// Result is the classification of one request: part of the policy input,
// the audit record and the explanation.
type Result struct {
	Task           string  `json:"task"`
	TaskConfidence float64 `json:"task_confidence"`
	TaskCue        string  `json:"task_cue,omitempty"`

	Complexity        string            `json:"complexity"`
	ComplexityDrivers []string          `json:"complexity_drivers"`
	ComplexitySignals ComplexitySignals `json:"complexity_signals"`

	Language string `json:"language"`

	PII       []Finding      `json:"pii"`
	PIICounts map[string]int `json:"pii_counts"`
	Secrets   []Finding      `json:"secrets"`
	Injection Injection      `json:"injection"`
	// Terms counts each configured term list (classify.terms) in the
	// whole request text, in config order; empty when none is configured.
	Terms []TermCount `json:"terms"`

	Sensitivity     string `json:"sensitivity"`
	SensitivityRule string `json:"sensitivity_rule"`
	Risk            string `json:"risk"`
	RiskRule        string `json:"risk_rule"`

	// InputTokens estimates the prompt tokens of the whole request
	// (o200k_base; see EstimateTokens), message framing included.
	InputTokens int `json:"input_tokens"`

	// Scan is ScanComplete when every text of the request was read, and
	// ScanTruncated when a cap stopped the scan (ScanLimit names it): the
	// findings then cover only part of the request.
	Scan      string `json:"scan"`
	ScanLimit string `json:"scan_limit,omitempty"`
	// Unread counts the parts the provider gets and no detector reads, by
	// kind (UnreadKinds): an image (inline or linked; a link's text is
	// read, its picture is not), audio, video, a file that is not text (a
	// PDF) or is sent by id. Nil when there are none.
	Unread map[string]int `json:"unread,omitempty"`
}

// UnreadKinds are the kinds of Result.Unread, in index order.
var UnreadKinds = [...]string{"image", "audio", "video", "file"}

const (
	unreadImage = iota
	unreadAudio
	unreadVideo
	unreadFile
)

// Finding locates one item of personal data or one secret: the message it
// is in (-1 outside messages), the field (relative to the message, or from
// the body root outside messages), and byte offsets into that field's text.
type Finding struct {
	Type    string `json:"type"`
	Message int    `json:"message"`
	Field   string `json:"field"`
	Start   int    `json:"start"`
	End     int    `json:"end"`
}

// TermCount is how often one term list's terms and patterns occur.
type TermCount struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// Injection is the prompt-injection / jailbreak signal: the highest score of
// any user or tool text, and the cue behind it.
type Injection struct {
	Score    float64 `json:"score"`
	Detected bool    `json:"detected"`
	Rule     string  `json:"rule,omitempty"`
	Message  int     `json:"message"` // where the highest score was, -1 if none
}

// Classifier holds the compiled sensitivity and risk rules and term lists.
type Classifier struct {
	rules *Rules
	terms *terms.Matcher // nil without classify.terms
	memo  *segmentMemo
}

// New compiles the classification config.
func New(c config.Classify) (*Classifier, error) {
	rules, err := CompileRules(c, pii.Types, task.Tasks)
	if err != nil {
		return nil, err
	}
	lists := make([]terms.List, len(c.Terms))
	for i, l := range c.Terms {
		lists[i] = terms.List{Name: l.Name, Terms: l.Terms, Patterns: l.Patterns}
	}
	m, err := terms.New(lists)
	if err != nil {
		return nil, err
	}
	return &Classifier{rules: rules, terms: m, memo: newSegmentMemo()}, nil
}

// Request is what the classifier reads from a parsed chat request: every
// member that carries text a model reads.
type Request struct {
	Messages       gjson.Result // the messages array
	Tools          gjson.Result // the tools array
	Functions      gjson.Result // the legacy functions array
	ResponseFormat gjson.Result // the response_format object
	Prediction     gjson.Result // the prediction object (predicted output)
	MaxTokens      int          // max_tokens or max_completion_tokens, 0 if unset
	// Input is the text of an embeddings or completions request (a string
	// or an array of them; token ids cannot be read and mark the scan
	// truncated), InputField its member (input, prompt); Suffix is the
	// completions suffix. Each string is read as a user turn of its own.
	Input, Suffix gjson.Result
	InputField    string
	// Embedded says the text is to be embedded, not read as a prompt: an
	// embedding model follows no instruction in it. Its injection signal
	// is scored and reported, but the sensitivity and risk rules'
	// injection conditions do not hold for it.
	Embedded bool
	// User, Metadata and Stop are the user, metadata and stop members:
	// not prompt text, but the provider gets them (and keeps metadata),
	// so personal data or a secret in them counts. They are left out of
	// the token estimate.
	User, Metadata, Stop gjson.Result
	// SafetyID and CacheKey are safety_identifier and prompt_cache_key,
	// read as User is (OpenAI's successors to user).
	SafetyID, CacheKey gjson.Result
	// Others are the request's members classify reads nothing else of
	// (request.Chat.Others), read as parameters, by their key.
	Others []jsonscan.KeyValue
	// Headers are the client's headers a provider gets beside the body
	// (user-agent, tracestate, idempotency keys, a provider's
	// forward_headers), read as parameters, by their lower-case name.
	Headers []Header
	// Workspace and Key are who sent the request (the virtual key and
	// its workspace; both empty without auth): texts it sent before are
	// looked up in the classifier's memo instead of scanned again, and
	// never another key's (memo.go).
	Workspace, Key string
}

// Header is a client header, by its lower-case name.
type Header struct{ Name, Value string }

// per-message framing tokens in OpenAI's chat format, and the reply primer.
const (
	tokensPerMessage = 3
	tokensReply      = 3
)

// systemRoles are the roles of the application's messages: the system
// prompt the task model reads as a hint.
var systemRoles = []string{"system", "developer"}

var piiBufs = sync.Pool{New: func() any { return new([32]pii.Match) }}

// Classify scores one request.
func (c *Classifier) Classify(req Request) Result {
	x := extraction{segs: make([]Segment, 0, 8)}
	x.request(req)
	segs := x.segs

	r := Result{PII: []Finding{}, Secrets: []Finding{}, PIICounts: map[string]int{}, Injection: Injection{Message: -1}, Scan: ScanComplete}
	var f facts
	// The PII detector's appends make escape analysis move its buffer to
	// the heap; a pooled one costs no allocation per request. Nothing
	// keeps a slice of it past this call (findings are copied out, the
	// memo copies what it keeps).
	piiBuf := piiBufs.Get().(*[32]pii.Match)
	defer piiBufs.Put(piiBuf)
	var secBuf [8]secrets.Match
	lastUser, userTokens := -1, 0
	systemSegs, systemKey := 0, memoKey{} // the system prompt's segments, the last one's memo key
	var termCounts, segTerms []int
	if names := c.terms.Names(); len(names) > 0 {
		termCounts, segTerms = make([]int, len(names)), make([]int, len(names))
	}
	for i := range segs {
		s := &segs[i]
		scored := scoresInjection(s)
		// What the per-segment detectors find, or found when this caller
		// sent the same text before (memo.go): the history of a
		// conversation, tool definitions. The newest message is new by
		// nature and always scanned (and remembered for the next turn).
		// Separate variables, not a segmentFacts: the buffers behind them
		// stay on the stack.
		var (
			tok   int
			segT  []int
			sec   []secrets.Match
			found []pii.Match
			inj   injection.Result
		)
		known, key := c.lookup(&req, s.Text, scored, s.Message != x.turns-1)
		if s.isContent() && hasRole(s.Role, systemRoles) {
			systemSegs, systemKey = systemSegs+1, key
		}
		if known != nil {
			tok, segT, sec, found, inj = known.tokens, known.terms, known.secrets, known.pii, known.inj
		} else {
			tok = EstimateTokens(s.Text)
			if segTerms != nil {
				clear(segTerms)
				c.terms.Count(s.Text, segTerms)
				segT = segTerms
			}
			sec = secrets.Detect(s.Text, secBuf[:0])
			found = pii.Detect(s.Text, piiBuf[:0])
			sec, found = detectPlain(s.Text, sec, found) // values hidden by invisible or full-width characters
			if scored {
				inj = injection.Score(s.Text)
			}
			c.remember(key, s.Text, tok, segT, sec, found, inj, scored)
		}
		for j, n := range segT {
			termCounts[j] += n
		}
		if !s.param {
			r.InputTokens += tok
		}
		var parts []PartSpan
		for _, m := range sec {
			field, start, end := s.locate(m.Start, m.End, &parts)
			r.Secrets = append(r.Secrets, Finding{Type: m.Type, Message: s.Message, Field: field, Start: start, End: end})
		}
		for _, m := range found {
			// A credential is reported once, as a secret: the password
			// in "user:pw@host" is not an e-mail address.
			if overlapsSecret(sec, m.Start, m.End) {
				continue
			}
			field, start, end := s.locate(m.Start, m.End, &parts)
			r.PII = append(r.PII, Finding{Type: m.Type, Message: s.Message, Field: field, Start: start, End: end})
			r.PIICounts[m.Type]++
			f.pii |= piiBit(m.Type)
		}
		if scored && inj.Score > r.Injection.Score {
			r.Injection = Injection{Score: inj.Score, Detected: inj.Detected, Rule: inj.Rule, Message: s.Message}
		}
		if s.Role == "user" && s.isContent() {
			if s.Message != lastUser {
				lastUser, userTokens = s.Message, 0
			}
			userTokens += tok
		}
	}
	r.Terms = make([]TermCount, len(termCounts))
	for i, n := range termCounts {
		r.Terms[i] = TermCount{Name: c.terms.Names()[i], Count: n}
	}
	turns := x.turns
	r.InputTokens += tokensPerMessage*turns + tokensReply
	if limit := x.cap(); limit != "" {
		r.Scan, r.ScanLimit = ScanTruncated, limit
	}
	for k, n := range x.media {
		if n > 0 {
			if r.Unread == nil {
				r.Unread = map[string]int{}
			}
			r.Unread[UnreadKinds[k]] = n
		}
	}

	// Task, language and complexity read the latest user turn, with the
	// system prompt as a weaker hint for the task.
	system, user := joinText(segs, -1, systemRoles...), joinText(segs, lastUser, "user")
	var sys task.System
	if systemSegs == 1 {
		sys = c.readSystem(&req, system, &systemKey) // the segment's key: its text is not hashed again
	} else {
		sys = c.readSystem(&req, system, nil)
	}
	t := task.ClassifyRead(&sys, user)
	r.Task, r.TaskConfidence, r.TaskCue = t.Task, t.Confidence, t.Cue
	r.Language = DetectLanguage(user)
	sig := measureComplexity(user, userTokens, turns, req.MaxTokens)
	r.ComplexitySignals = sig
	r.Complexity, r.ComplexityDrivers = sig.level()
	if r.ComplexityDrivers == nil {
		r.ComplexityDrivers = []string{}
	}

	f.secrets = len(r.Secrets) > 0
	if !req.Embedded {
		f.injDetected, f.injScore = r.Injection.Detected, r.Injection.Score
	}
	f.task, f.tokens = r.Task, r.InputTokens
	f.truncated = r.Scan != ScanComplete
	var lvl int
	lvl, r.SensitivityRule = first(c.rules.sensitivity, &f)
	r.Sensitivity = SensitivityLevels[lvl]
	f.sensitivity = lvl
	lvl, r.RiskRule = first(c.rules.risk, &f)
	r.Risk = RiskLevels[lvl]
	return r
}

// scoresInjection says whether a segment is scored for prompt injection:
// message text from any role but the application's (system, developer) and
// the model's (assistant), so an unknown role is scored too. Text outside
// messages (tool definitions, schemas) is the application's; benign tool
// descriptions score 0.3–0.4, which would raise every tool request to
// medium risk.
func scoresInjection(s *Segment) bool {
	if s.Message < 0 || s.param {
		return false
	}
	switch s.Role {
	case "system", "developer", "assistant":
		return false
	}
	return true
}

// joinText returns the content of one message (message >= 0) or of every
// message with one of the roles (message < 0). A single segment is returned
// without copying.
func joinText(segs []Segment, message int, roles ...string) string {
	var parts []string
	for i := range segs {
		s := &segs[i]
		if !s.isContent() {
			continue
		}
		if message >= 0 && s.Message != message {
			continue
		}
		if message < 0 && !hasRole(s.Role, roles) {
			continue
		}
		if message >= 0 && !hasRole(s.Role, roles) {
			continue
		}
		parts = append(parts, s.Text)
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, p...)
	}
	return string(b)
}

func hasRole(role string, roles []string) bool {
	for _, r := range roles {
		if role == r {
			return true
		}
	}
	return false
}

func overlapsSecret(sec []secrets.Match, start, end int) bool {
	for _, m := range sec {
		if m.Start < end && start < m.End {
			return true
		}
	}
	return false
}

func piiBit(typ string) uint64 {
	for i, t := range pii.Types {
		if t == typ && i < 63 {
			return 1 << i
		}
	}
	return 0
}
