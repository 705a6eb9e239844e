package flow

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Env is what a route is checked against: the catalog's models and
// providers, the configured budgets, and the request headers routes may
// read. A nil set is not checked (a draft tested without a config).
type Env struct {
	// Models are the catalog's model ids; Providers its provider names
	// (allow and deny lists take provider:<name>).
	Models    []string
	Providers []string
	// Budgets are the configured budgets' names.
	Budgets []string
	// Workspaces are the configured workspaces' names (default among
	// them); nil: not checked.
	Workspaces []string
	// Headers are the request headers conditions may read (lower-case);
	// nil: DefaultHeaders.
	Headers []string
}

// DefaultHeaders are the client headers the edge keeps for the policy
// input and routes: nothing that carries a credential.
var DefaultHeaders = []string{"user-agent", "x-client-app", "x-request-id"}

func (e *Env) headers() []string {
	if e == nil || e.Headers == nil {
		return DefaultHeaders
	}
	return e.Headers
}

func (e *Env) hasHeader(h string) bool { return slices.Contains(e.headers(), h) }

func (e *Env) hasBudget(b string) bool { return slices.Contains(e.Budgets, b) }

func (e *Env) hasModel(id string) bool {
	return e == nil || e.Models == nil || slices.Contains(e.Models, id)
}

func (e *Env) listed(entry string) bool {
	if p, ok := strings.CutPrefix(entry, "provider:"); ok {
		return e == nil || e.Providers == nil || slices.Contains(e.Providers, p)
	}
	return e.hasModel(entry)
}

// Kind is what a node does.
type Kind uint8

// Node kinds.
const (
	KindIf Kind = iota + 1
	KindSplit
	KindModel
	KindRateLimit
	KindBudgetLimit
	KindChain
	KindEnd
)

var kindNames = [...]string{"", "if", "split", "model", "rate_limit", "budget_limit", "chain", "end"}

func (k Kind) String() string { return kindNames[k] }

// MarshalText renders the kind's name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Auto is the string a model node gives to let selection choose.
const Auto = "auto"

// Objectives a model node may ask auto selection for.
var Objectives = []string{"cost", "latency", "accuracy", "balanced"}

// Target is a model a route may send the request to: a pinned catalog
// model, or auto selection narrowed by the node's settings.
type Target struct {
	// Node is the model node's id.
	Node string `json:"node"`
	// Model is a catalog model id or "auto".
	Model string `json:"model"`
	// Objective, MinQuality, Allow and Deny narrow auto selection ("" and
	// 0 and nil: the policy's).
	Objective  string   `json:"objective,omitempty"`
	MinQuality float64  `json:"min_quality,omitempty"`
	Allow      []string `json:"allow,omitempty"`
	Deny       []string `json:"deny,omitempty"`
}

// IsAuto reports whether selection chooses the model.
func (t *Target) IsAuto() bool { return t.Model == Auto }

// Per is whose requests a rate limit node counts.
type Per uint8

// Rate limit subjects.
const (
	PerKey Per = iota + 1
	PerUser
	PerTeam
	PerWorkspace
	PerRoute
)

var perNames = [...]string{"", "key", "user", "team", "workspace", "route"}

func (p Per) String() string { return perNames[p] }

// RateLimit is a compiled rate_limit node. The Limiter counts against it;
// its counters are named by Counter, which survives new versions.
type RateLimit struct {
	Route, Node       string
	RequestsPerMinute int64
	RequestsPerDay    int64
	Per               Per
	// FailClosed takes the fallback when the count cannot be checked.
	FailClosed bool
}

// Counter names the limit's counters: route.<route>.<node>.
func (r *RateLimit) Counter() string { return "route." + r.Route + "." + r.Node }

// End is a compiled end node: the request is refused.
type End struct {
	Node    string `json:"node"`
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// EndStatuses are the statuses an end node may answer with.
var EndStatuses = []int{400, 403, 404, 429, 503}

type sticky uint8

const (
	stickyNone sticky = iota
	stickyUser
	stickyKey
	stickyMetadata
	stickyRequestUser // the body's user only
)

type arm struct {
	name  string
	label string // node/arm, the counters' arm
	upto  uint64 // cumulative weight share, scaled to 2^32
	next  int
}

type node struct {
	id   string
	kind Kind

	cond       *condition // if
	then, els  int
	sticky     sticky // split
	stickyKey  string
	salt       string
	arms       []arm
	rate       *RateLimit // rate_limit
	budget     string     // budget_limit
	at         float64
	next, fall int      // limits
	targets    []Target // model (one), chain (several)
	refuse     bool     // model, chain: on_unavailable: refuse
	end        *End
}

// Flow is a compiled route version: immutable and safe for concurrent use.
type Flow struct {
	Name        string
	Description string
	// Version is the store's version number (0: a draft not stored).
	Version int64
	// Hash is the content hash of the document the flow was compiled from.
	Hash string
	// Source is the document's text.
	Source []byte

	doc          *Doc
	nodes        []node
	start        int
	needsBudgets bool
	rates        []*RateLimit
	workspaces   []string // the workspaces that may use it; empty: every one
	warnings     []*Error
}

// Warnings are the problems of a flow that loads: a condition comparing
// an enumerated variable with a value it never has. LoadNew refuses them;
// a version stored before they were checked keeps loading with them (it
// served yesterday; refusing it would turn its route into 503s after an
// upgrade), and its loader logs them.
func (f *Flow) Warnings() []*Error { return f.warnings }

// Doc is the parsed document the flow was compiled from.
func (f *Flow) Doc() *Doc { return f.doc }

// Allows reports whether callers of workspace ws may use the route: every
// workspace, unless its document lists some (workspaces).
func (f *Flow) Allows(ws string) bool {
	return len(f.workspaces) == 0 || slices.Contains(f.workspaces, ws)
}

// Label is name@version, or the name of a draft.
func (f *Flow) Label() string {
	if f.Version == 0 {
		return f.Name
	}
	return fmt.Sprintf("%s@%d", f.Name, f.Version)
}

// NeedsBudgets reports whether evaluation reads Input.Budgets (a
// budget_limit node, or a condition on budgets): the edge then peeks at
// the ledger before evaluating.
func (f *Flow) NeedsBudgets() bool { return f.needsBudgets }

// RateLimits are the flow's rate_limit nodes, for a Limiter to compile
// counters for.
func (f *Flow) RateLimits() []*RateLimit { return f.rates }

// Load parses and compiles a document: a stored version or a file, which
// loads with its Warnings.
func Load(source string, data []byte, env *Env) (*Flow, error) {
	return load(source, data, env, false)
}

// LoadNew parses and compiles a document a user submits as a new version
// (or a draft to test): as Load, and a warning is an error too.
func LoadNew(source string, data []byte, env *Env) (*Flow, error) {
	return load(source, data, env, true)
}

func load(source string, data []byte, env *Env, strict bool) (*Flow, error) {
	doc, err := Parse(source, data)
	if err != nil {
		return nil, err
	}
	f, err := compile(source, doc, env, strict)
	if err != nil {
		return nil, err
	}
	f.Source = data
	f.Hash = Hash(data)
	return f, nil
}

// compiler checks a Doc and builds its Flow, collecting every problem.
type compiler struct {
	source string
	doc    *Doc
	src    []byte
	env    *Env
	errs   []*Error
	warns  []*Error
	strict bool // a warning is an error
	index  map[string]int
	// unlinked is set when an edge, the start or a node id could not be
	// resolved: reachability is then unknown, and graph is not run (its
	// "no path reaches" would only repeat the edge's error).
	unlinked bool
}

func (c *compiler) fail(node, field, path string, format string, args ...any) {
	e := &Error{Source: c.source, Route: c.doc.Route, Node: node, Field: field, Msg: fmt.Sprintf(format, args...)}
	if p, ok := c.doc.pos[path]; ok {
		e.Line, e.Column = p.Line, p.Column
	}
	c.errs = append(c.errs, e)
}

// compile checks a parsed document against env and compiles its
// conditions. Every problem is reported, each with the route, the node and
// its position; the flow keeps its Warnings, which strict makes errors.
func compile(source string, doc *Doc, env *Env, strict bool) (*Flow, error) {
	c := &compiler{source: source, doc: doc, src: doc.src, env: env, strict: strict, index: map[string]int{}}
	if doc.pos == nil {
		doc.pos = map[string]Pos{}
	}
	f := &Flow{Name: doc.Route, Description: doc.Description, doc: doc, nodes: make([]node, len(doc.Nodes))}
	for i, n := range doc.Nodes {
		if j, dup := c.index[n.ID]; dup {
			c.fail(n.ID, "id", fmt.Sprintf("nodes[%d].id", i), "node id %q is also nodes[%d]", n.ID, j)
			c.unlinked = true
			continue
		}
		c.index[n.ID] = i
	}
	for i := range doc.Nodes {
		c.node(f, i)
	}
	for i, w := range doc.Workspaces {
		if env != nil && env.Workspaces != nil && !slices.Contains(env.Workspaces, w) {
			c.fail("", "workspaces", fmt.Sprintf(".workspaces[%d]", i), "no workspace %q in the config", w)
		}
	}
	f.workspaces = doc.Workspaces
	if len(doc.Nodes) > 0 {
		f.start = 0
		if doc.Start != "" {
			if j, ok := c.index[doc.Start]; ok {
				f.start = j
			} else {
				c.fail("", "start", "start", "no node %q", doc.Start)
				c.unlinked = true
			}
		}
	}
	// Cycles and unreachable nodes are reported beside every other
	// problem (a CEL error, an unknown model), unless an edge is unresolved.
	if !c.unlinked {
		c.graph(f)
	}
	if len(c.errs) > 0 {
		return nil, &LoadError{c.errs}
	}
	f.warnings = c.warns
	return f, nil
}

// ref resolves a node id an edge names.
func (c *compiler) ref(id, node, field, path string) int {
	if id == "" {
		c.fail(node, field, path, "required: a node id")
		c.unlinked = true
		return -1
	}
	j, ok := c.index[id]
	if !ok {
		c.fail(node, field, path, "no node %q", id)
		c.unlinked = true
		return -1
	}
	return j
}

func (c *compiler) node(f *Flow, i int) {
	d := &c.doc.Nodes[i]
	n := &f.nodes[i]
	n.id = d.ID
	base := fmt.Sprintf("nodes[%d]", i)
	p := func(field string) string { return base + "." + field }
	unused := func(field string, set bool, kind string) {
		if set {
			c.fail(d.ID, field, p(field), "only a %s node has %s", kind, field)
		}
	}
	isModel := d.Model != ""
	unused("then", d.Then != "" && d.If == "", "if")
	unused("else", d.Else != "" && d.If == "", "if")
	unused("objective", d.Objective != "" && !isModel, "model")
	unused("min_quality", d.MinQuality != 0 && !isModel, "model")
	unused("allow", d.Allow != nil && !isModel, "model")
	unused("deny", d.Deny != nil && !isModel, "model")
	isLimit := d.RateLimit != nil || d.BudgetLimit != nil
	unused("on_unavailable", d.OnUnavailable != "" && !isModel && d.Chain == nil, "model or chain")
	switch d.OnUnavailable {
	case "", "fallback":
	case "refuse":
		n.refuse = true
	default:
		c.fail(d.ID, "on_unavailable", p("on_unavailable"), "%q is not fallback or refuse", d.OnUnavailable)
	}
	unused("next", d.Next != "" && !isLimit, "rate_limit or budget_limit")
	unused("fallback", d.Fallback != "" && !isLimit, "rate_limit or budget_limit")

	switch {
	case d.If != "" || d.Then != "" || d.Else != "":
		n.kind = KindIf
		n.then = c.ref(d.Then, d.ID, "then", p("then"))
		n.els = c.ref(d.Else, d.ID, "else", p("else"))
		cond, errs := compileCondition(d.If, c.env)
		for _, e := range errs {
			c.errs = append(c.errs, c.exprError(d.ID, p("if"), e))
		}
		if cond != nil {
			for _, e := range cond.never {
				if c.strict {
					c.errs = append(c.errs, c.exprError(d.ID, p("if"), e))
				} else {
					c.warns = append(c.warns, c.exprError(d.ID, p("if"), e))
				}
			}
		}
		n.cond = cond
		if cond != nil && cond.uses.budgets {
			f.needsBudgets = true
		}
	case d.Split != nil:
		n.kind = KindSplit
		c.split(n, d, f.Name, base)
	case isModel:
		n.kind = KindModel
		t := c.target(d, base)
		n.targets = []Target{t}
	case d.RateLimit != nil:
		n.kind = KindRateLimit
		r := d.RateLimit
		n.rate = &RateLimit{Route: f.Name, Node: d.ID, RequestsPerMinute: r.RequestsPerMinute, RequestsPerDay: r.RequestsPerDay}
		switch {
		case r.RequestsPerMinute < 0 || r.RequestsPerDay < 0:
			c.fail(d.ID, "rate_limit", p("rate_limit"), "limits must not be negative")
		case r.RequestsPerMinute == 0 && r.RequestsPerDay == 0:
			c.fail(d.ID, "rate_limit", p("rate_limit"), "set requests_per_minute or requests_per_day")
		}
		switch r.Per {
		case "", "key":
			n.rate.Per = PerKey
		case "user":
			n.rate.Per = PerUser
		case "team":
			n.rate.Per = PerTeam
		case "workspace":
			n.rate.Per = PerWorkspace
		case "route":
			n.rate.Per = PerRoute
		default:
			c.fail(d.ID, "rate_limit.per", p("rate_limit"), "%q is not key, user, team, workspace or route", r.Per)
		}
		switch r.Fail {
		case "", "open":
		case "closed":
			n.rate.FailClosed = true
		default:
			c.fail(d.ID, "rate_limit.fail", p("rate_limit"), "%q is not open or closed", r.Fail)
		}
		f.rates = append(f.rates, n.rate)
		c.limitEdges(n, d, base)
	case d.BudgetLimit != nil:
		n.kind = KindBudgetLimit
		b := d.BudgetLimit
		n.budget, n.at = b.Budget, b.At
		if n.at == 0 {
			n.at = 1
		}
		switch {
		case b.Budget == "":
			c.fail(d.ID, "budget_limit.budget", p("budget_limit"), "required: a budget's name")
		case c.env != nil && c.env.Budgets != nil && !c.env.hasBudget(b.Budget):
			c.fail(d.ID, "budget_limit.budget", p("budget_limit"), "unknown budget %q (configured: %s)", b.Budget, list(c.env.Budgets))
		}
		if n.at <= 0 || n.at > 1 {
			c.fail(d.ID, "budget_limit.at", p("budget_limit"), "must be a share above 0 and at most 1")
		}
		f.needsBudgets = true
		c.limitEdges(n, d, base)
	case d.Chain != nil:
		n.kind = KindChain
		if len(d.Chain) == 0 || len(d.Chain) > MaxChain {
			c.fail(d.ID, "chain", p("chain"), "a chain lists 1 to %d model nodes", MaxChain)
		}
	case d.End != nil:
		n.kind = KindEnd
		n.end = &End{Node: d.ID, Status: d.End.Status, Message: d.End.Message}
		if n.end.Status == 0 {
			n.end.Status = 403
		}
		if !slices.Contains(EndStatuses, n.end.Status) {
			c.fail(d.ID, "end.status", p("end"), "%d is not one of 400, 403, 404, 429, 503", n.end.Status)
		}
		if strings.TrimSpace(n.end.Message) == "" || len(n.end.Message) > 512 {
			c.fail(d.ID, "end.message", p("end"), "required: what the caller is told (at most 512 bytes)")
		}
	default:
		c.fail(d.ID, "", base, "a node needs one of: %s (with a value)", strings.Join(kinds, ", "))
	}
}

// exprError places a CEL error in the document: the expression's start
// plus the error's line and column inside it.
func (c *compiler) exprError(node, path string, e exprError) *Error {
	err := &Error{Source: c.source, Route: c.doc.Route, Node: node, Field: "if", Msg: e.msg}
	if p, ok := c.doc.pos[path]; ok && e.line > 0 {
		err.Line = p.Line + e.line - 1
		switch {
		case p.Column == 0: // a block scalar: its indentation
			err.Column = indentOf(c.src, p.Line) + e.col + 1 // the block's own indentation
		case e.line == 1:
			err.Column = p.Column + e.col
		default:
			err.Column = e.col + 1
		}
		if c.src == nil && p.Column == 0 {
			err.Column = 0
		}
	}
	return err
}

func indentOf(src []byte, line int) int {
	lines := bytes.Split(src, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 0
	}
	return len(lines[line-1]) - len(bytes.TrimLeft(lines[line-1], " "))
}

func (c *compiler) limitEdges(n *node, d *NodeDoc, base string) {
	n.next = c.ref(d.Next, d.ID, "next", base+".next")
	n.fall = c.ref(d.Fallback, d.ID, "fallback", base+".fallback")
}

func (c *compiler) split(n *node, d *NodeDoc, route, base string) {
	s := d.Split
	switch {
	case s.Sticky == "" || s.Sticky == "none":
	case s.Sticky == "user":
		n.sticky = stickyUser
	case s.Sticky == "request.user":
		n.sticky = stickyRequestUser
	case s.Sticky == "key":
		n.sticky = stickyKey
	case strings.HasPrefix(s.Sticky, "metadata.") && len(s.Sticky) > len("metadata."):
		n.sticky, n.stickyKey = stickyMetadata, strings.TrimPrefix(s.Sticky, "metadata.")
	default:
		c.fail(d.ID, "split.sticky", base+".split.sticky", "%q is not none, user, request.user, key or metadata.<field>", s.Sticky)
	}
	n.salt = route + "/" + d.ID + "/"
	if len(s.Arms) < 2 {
		c.fail(d.ID, "split.arms", base+".split", "a split needs at least two arms")
		return
	}
	var total float64
	names := map[string]bool{}
	for i, a := range s.Arms {
		f := fmt.Sprintf("split.arms[%d]", i)
		switch {
		case a.Name == "" || !idRE.MatchString(a.Name):
			c.fail(d.ID, f+".name", base+"."+f, "required: an arm name (letters, digits, - and _)")
		case names[a.Name]:
			c.fail(d.ID, f+".name", base+"."+f+".name", "arm %q is named twice", a.Name)
		}
		names[a.Name] = true
		if a.Weight < 0 || a.Weight > 1e6 {
			c.fail(d.ID, f+".weight", base+"."+f+".weight", "must be between 0 and 1000000")
		}
		total += max(a.Weight, 0)
		n.arms = append(n.arms, arm{name: a.Name, label: d.ID + "/" + a.Name, next: c.ref(a.Next, d.ID, f+".next", base+"."+f+".next")})
	}
	if total <= 0 {
		c.fail(d.ID, "split.arms", base+".split", "at least one arm needs a positive weight")
		return
	}
	// Arm i takes the hashes below upto (scaled to 2^32); a zero-weight
	// arm's upto equals its predecessor's, so it takes none.
	var cum float64
	last := 0
	for i, a := range s.Arms {
		cum += max(a.Weight, 0)
		n.arms[i].upto = uint64(cum / total * (1 << 32))
		if a.Weight > 0 {
			last = i
		}
	}
	for i := last; i < len(n.arms); i++ {
		n.arms[i].upto = 1 << 32 // no rounding gap at the top
	}
}

func (c *compiler) target(d *NodeDoc, base string) Target {
	t := Target{Node: d.ID, Model: d.Model, Objective: d.Objective, MinQuality: d.MinQuality, Allow: d.Allow, Deny: d.Deny}
	if d.Model != Auto {
		if !c.env.hasModel(d.Model) {
			c.fail(d.ID, "model", base+".model", "unknown model %q (not in the catalog)", d.Model)
		}
		for _, f := range []struct {
			name string
			set  bool
		}{{"objective", d.Objective != ""}, {"min_quality", d.MinQuality != 0}, {"allow", d.Allow != nil}, {"deny", d.Deny != nil}} {
			if f.set {
				c.fail(d.ID, f.name, base+"."+f.name, "only model: auto takes %s (a pinned model is the choice)", f.name)
			}
		}
		return t
	}
	if d.Objective != "" && !slices.Contains(Objectives, d.Objective) {
		c.fail(d.ID, "objective", base+".objective", "%q is not one of %s", d.Objective, strings.Join(Objectives, ", "))
	}
	if d.MinQuality < 0 || d.MinQuality > 1 {
		c.fail(d.ID, "min_quality", base+".min_quality", "must be between 0 and 1")
	}
	for _, l := range []struct {
		name    string
		entries []string
	}{{"allow", d.Allow}, {"deny", d.Deny}} {
		for i, e := range l.entries {
			if !c.env.listed(e) {
				c.fail(d.ID, fmt.Sprintf("%s[%d]", l.name, i), fmt.Sprintf("%s.%s[%d]", base, l.name, i),
					"%q is neither a catalog model nor provider:<a configured provider>", e)
			}
		}
	}
	return t
}

// graph resolves chains and checks the nodes form a graph without cycles
// in which every node is reached from the start.
func (c *compiler) graph(f *Flow) {
	for i, d := range c.doc.Nodes {
		n := &f.nodes[i]
		if n.kind != KindChain {
			continue
		}
		for j, id := range d.Chain {
			path := fmt.Sprintf("nodes[%d].chain[%d]", i, j)
			k, ok := c.index[id]
			switch {
			case !ok:
				c.fail(d.ID, fmt.Sprintf("chain[%d]", j), path, "no node %q", id)
			case f.nodes[k].kind != KindModel:
				c.fail(d.ID, fmt.Sprintf("chain[%d]", j), path, "%q is a %s node; a chain lists model nodes", id, f.nodes[k].kind)
			default:
				n.targets = append(n.targets, f.nodes[k].targets[0])
			}
		}
	}
	// Depth-first from the start: a node met again on the current path is
	// a cycle; a node never met is unreachable.
	state := make([]uint8, len(f.nodes)) // 0 new, 1 on path, 2 done
	var path []string
	var visit func(i int) bool
	visit = func(i int) bool {
		switch state[i] {
		case 1:
			cycle := append(append([]string(nil), path[slices.Index(path, f.nodes[i].id):]...), f.nodes[i].id)
			c.fail(f.nodes[i].id, "", fmt.Sprintf("nodes[%d]", i), "the flow loops: %s", strings.Join(cycle, " → "))
			return false
		case 2:
			return true
		}
		state[i] = 1
		path = append(path, f.nodes[i].id)
		for _, j := range successors(&f.nodes[i]) {
			if !visit(j) {
				return false
			}
		}
		path = path[:len(path)-1]
		state[i] = 2
		return true
	}
	if !visit(f.start) {
		return
	}
	for i := range f.nodes {
		if state[i] != 0 && f.nodes[i].kind == KindChain {
			for _, t := range f.nodes[i].targets {
				state[c.index[t.Node]] = 2
			}
		}
	}
	for i, s := range state {
		if s == 0 {
			c.fail(f.nodes[i].id, "", fmt.Sprintf("nodes[%d]", i), "no path from the start (%s) reaches this node", f.nodes[f.start].id)
		}
	}
}

func successors(n *node) []int {
	switch n.kind {
	case KindIf:
		return []int{n.then, n.els}
	case KindSplit:
		out := make([]int, len(n.arms))
		for i, a := range n.arms {
			out[i] = a.next
		}
		return out
	case KindRateLimit, KindBudgetLimit:
		return []int{n.next, n.fall}
	}
	return nil
}
