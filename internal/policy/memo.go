package policy

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/stellwerk/stellwerk/internal/classify"
)

// A decision is a pure function of the input, the modules and the
// catalog, unless a module calls a non-deterministic builtin. The memo
// keeps decisions keyed on exactly the parts of the input the modules can
// read (found by walking every input reference of the compiled modules),
// so that two requests the policy cannot tell apart share one evaluation.
// The key is exact, never a hash alone: a request that differs in any value
// the policy reads is evaluated.

// paths is a tree of the input paths a policy reads.
type paths struct {
	all  bool              // the whole value below is read
	keys map[string]*paths // constant object keys
	any  *paths            // a variable key or index: every element
	// sorted keys, filled by finish
	names []string
	terms []*ast.Term
	// when: a member of an element read only by rule bodies that first
	// required of that element the guards of one of these conjunctions
	// (guardedReads); always: some read required nothing.
	when   [][]guard
	always bool
}

// guard is a conjunct `input.…[v].field = value` of a rule body, value a
// scalar: the body goes on only for the elements whose member field is
// present and equal to value.
type guard struct {
	field *ast.Term
	value ast.Value
}

// conditional says whether p is a member read only under guards.
func (p *paths) conditional() bool { return !p.always && len(p.when) > 0 }

// readIn says whether the policy can read member p of element x: some
// conjunction of its guards may hold there. A budget's name, which the
// library reads only of downgrade budgets in force, is per key for every
// other budget (key.<id>.month): in the memo key it split the decisions
// of a workspace's keys.
func (p *paths) readIn(x ast.Object) bool {
	for _, conj := range p.when {
		holds := true
		for _, g := range conj {
			if v := x.Get(g.field); v == nil || ast.Compare(v.Value, g.value) != 0 {
				holds = false
				break
			}
		}
		if holds {
			return true
		}
	}
	return false
}

func (p *paths) child(k string) *paths {
	if p.keys == nil {
		p.keys = map[string]*paths{}
	}
	c := p.keys[k]
	if c == nil {
		c = &paths{}
		p.keys[k] = c
	}
	return c
}

func (p *paths) wild() *paths {
	if p.any == nil {
		p.any = &paths{}
	}
	return p.any
}

// add records one input reference (without its head). Its member at
// index at is read under the guards conj (at -1: unconditionally).
func (p *paths) add(ref ast.Ref, at int, conj []guard) {
	n := p
	for i, t := range ref {
		if n.all {
			return
		}
		if s, ok := t.Value.(ast.String); ok {
			n = n.child(string(s))
		} else {
			n = n.wild() // a variable, a number, a nested reference
		}
		if i == at {
			n.when = append(n.when, conj)
		} else {
			n.always = true
		}
	}
	n.all = true
}

// merge adds what src reads to p.
func (p *paths) merge(src *paths) {
	if src == nil || p.all {
		return
	}
	if src.all {
		*p = paths{all: true}
		return
	}
	p.always = p.always || src.always
	p.when = append(p.when, src.when...)
	for k, c := range src.keys {
		p.child(k).merge(c)
	}
	if src.any != nil {
		p.wild().merge(src.any)
	}
}

// finish folds each wildcard into the constant keys beside it (a key is
// read both by name and by any variable) and sorts the names.
func (p *paths) finish() {
	if p == nil || p.all {
		return
	}
	if p.any != nil {
		p.any.finish()
	}
	for k, c := range p.keys {
		c.merge(p.any)
		c.finish()
		p.names = append(p.names, k)
	}
	slices.Sort(p.names)
	for _, k := range p.names {
		p.terms = append(p.terms, ast.StringTerm(k))
	}
}

func (p *paths) get(k string) *paths {
	if p == nil {
		return nil
	}
	if p.all {
		return p
	}
	if c := p.keys[k]; c != nil {
		return c
	}
	return p.any
}

// Reads says whether the policy can read the input value at path (member
// names below input, a map's key as a member), or any part of it: it reads
// it by name, through a variable key or index, or reads a value it is part
// of whole. Replay asks it of the values an audit record keeps redacted
// (the user, metadata, headers), which a policy reading them decides on
// the redacted text.
func (e *Engine) Reads(path ...string) bool {
	p := e.reads
	for _, k := range path {
		if p == nil || p.all {
			break
		}
		p = p.get(k)
	}
	return p != nil
}

// analyze walks the compiled modules. It returns the input paths they read
// and false when a decision may not be memoised: a non-deterministic
// builtin, or `with` replacing the input.
func analyze(mods map[string]*ast.Module) (*paths, bool) {
	root := &paths{}
	ok := true
	guarded := guardedReads(mods)
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		switch v := x.(type) {
		case *ast.Term:
			if g, found := guarded[v]; found {
				r := v.Value.(ast.Ref)
				root.add(r[1:], g.at-1, g.conj)
				for _, t := range r[1:] {
					vis.Walk(t)
				}
				return true
			}
		case ast.Ref:
			if v.HasPrefix(ast.InputRootRef) {
				root.add(v[1:], -1, nil)
				for _, t := range v[1:] {
					vis.Walk(t) // references inside keys
				}
				return true
			}
		case ast.Var:
			if v.Equal(ast.InputRootDocument.Value) {
				root.all = true // the input as a whole
			}
		case *ast.Expr:
			for _, w := range v.With {
				if r, isRef := w.Target.Value.(ast.Ref); !isRef || r.HasPrefix(ast.InputRootRef) {
					ok = false
				}
			}
			if v.IsCall() {
				if b, found := ast.BuiltinMap[v.Operator().String()]; found && b.Nondeterministic {
					ok = false
				}
			}
		case ast.Call:
			if b, found := ast.BuiltinMap[v[0].String()]; found && b.Nondeterministic {
				ok = false
			}
		}
		return false
	})
	for _, m := range mods {
		vis.Walk(m)
	}
	root.finish()
	return root, ok
}

// guardedRead is an input reference read under guards: its member at
// (an index of the reference) is read only of the elements where conj
// holds.
type guardedRead struct {
	at   int
	conj []guard
}

// guardedReads finds the input references `input.…[v].f…` that an
// expression of a rule body reads as one of its operands after guards
// `input.…[v].g = scalar` on the same elements, earlier in the same body:
// a body is evaluated in order, so for an element where a guard fails the
// read never happens (no value, no error). Anything else (a reference
// nested in a term, in a negated expression or under with, a guard in an
// enclosing body) is left to the plain analysis: read always.
func guardedReads(mods map[string]*ast.Module) map[*ast.Term]guardedRead {
	out := map[*ast.Term]guardedRead{}
	type elemGuard struct {
		elems ast.Ref // input.… up to the variable
		v     ast.Var
		g     guard
	}
	for _, m := range mods {
		ast.WalkBodies(m, func(b ast.Body) bool {
			var seen []elemGuard
			for _, e := range b {
				if e.Negated || len(e.With) > 0 {
					continue
				}
				var ops []*ast.Term
				switch ts := e.Terms.(type) {
				case *ast.Term:
					ops = []*ast.Term{ts}
				case []*ast.Term:
					if len(ts) > 0 {
						ops = ts[1:]
					}
				}
				for _, t := range ops {
					r, isRef := t.Value.(ast.Ref)
					if !isRef || !r.HasPrefix(ast.InputRootRef) {
						continue
					}
					for j := 1; j+1 < len(r); j++ {
						v, isVar := r[j].Value.(ast.Var)
						if _, isStr := r[j+1].Value.(ast.String); !isVar || !isStr {
							continue
						}
						var conj []guard
						for _, s := range seen {
							if s.v.Equal(v) && s.elems.Equal(r[:j]) {
								conj = append(conj, s.g)
							}
						}
						if len(conj) > 0 {
							out[t] = guardedRead{at: j + 1, conj: conj}
						}
						break
					}
				}
				if elems, v, g, isGuard := asGuard(e); isGuard {
					seen = append(seen, elemGuard{elems, v, g})
				}
			}
			return false
		})
	}
	return out
}

// asGuard reads e as `input.…[v].field = scalar` (or ==, either way round).
func asGuard(e *ast.Expr) (ast.Ref, ast.Var, guard, bool) {
	ts, isCall := e.Terms.([]*ast.Term)
	if !isCall || len(ts) != 3 || !(e.IsEquality() || ts[0].Value.Compare(ast.Equal.Ref()) == 0) {
		return nil, "", guard{}, false
	}
	for _, pair := range [2][2]*ast.Term{{ts[1], ts[2]}, {ts[2], ts[1]}} {
		r, isRef := pair[0].Value.(ast.Ref)
		if !isRef || len(r) < 4 || !r.HasPrefix(ast.InputRootRef) || !ast.IsScalar(pair[1].Value) {
			continue
		}
		v, isVar := r[len(r)-2].Value.(ast.Var)
		if _, isStr := r[len(r)-1].Value.(ast.String); !isVar || !isStr {
			continue
		}
		return r[:len(r)-2], v, guard{field: r[len(r)-1], value: pair[1].Value}, true
	}
	return nil, "", guard{}, false
}

// The candidate fields that change per request; every other field is the
// catalog's, the same for every request with the same CatalogTerms.
const (
	readsCost = 1 << iota
	readsQuality
	readsHealthy
	readsLatency
)

// memo is one engine's decisions. It holds at most 2×memoSize entries: when
// the current generation is full it becomes the previous one, and entries
// found there are carried over, so what is in use stays.
//
// Decisions of different keys mostly hold the same values: every request of
// an EU workspace excludes the same 49 models for the same reasons, whatever
// its prompt. Each generation keeps one copy of each exclusion map, tag map
// and string (interned), so an entry costs its key and a few pointers, not a
// map of its own: 1,000 workspaces' keys fit.
type memo struct {
	root  *paths
	cands int // reads… bits of the candidate fields the policy reads
	parts [len(partNames)]*paths
	// nameless is the workspace's paths less its name, names the
	// expressions that may read it; nil when decisions are not shared
	// between workspaces (share.go)
	nameless *paths
	names    *nameReads

	mu        sync.RWMutex
	cur, prev map[string]*Decision
	shared    *interned // the current generation's values

	hits, misses atomic.Uint64
}

// memoSize is a generation's entries. The shipped library over the task
// corpus makes about 35 keys per workspace, so two generations hold the
// keys of 1,000 workspaces with the same settings, or of fewer with
// different ones; each entry is about 0.5 KB (its key and the decision's
// fields), so a full memo is about 16 MB.
const memoSize = 16384

// newMemo returns nil when memoising cannot pay or cannot be exact: the
// policy reads the input as a whole, or a value that changes with every
// request (estimated costs, learned latencies).
func newMemo(root *paths, names *nameReads) *memo {
	if root.all {
		return nil
	}
	m := &memo{root: root, cur: map[string]*Decision{}, shared: newInterned()}
	for i, name := range partNames {
		m.parts[i] = root.get(name)
	}
	if m.nameless = withoutName(m.parts[workspacePart]); m.nameless != nil && names != nil {
		m.names = names
	} else {
		m.nameless = nil
	}
	if c := root.get("candidates"); c != nil {
		el := c.any
		if c.all {
			el = c
		}
		for f, bit := range map[string]int{"estimated_cost_eur": readsCost, "quality": readsQuality, "healthy": readsHealthy, "latency_ms": readsLatency} {
			if el.get(f) != nil {
				m.cands |= bit
			}
		}
	}
	if m.cands&(readsCost|readsLatency) != 0 {
		return nil
	}
	return m
}

// key is the memo key of one input: the catalog, the read parts of the
// request-level input, and the read per-request candidate fields; nameless,
// without the workspace's name (share.go: the caller checks m.shares(in)).
func (m *memo) key(buf []byte, in *Input, ct *CatalogTerms, parts *inputParts, nameless bool) []byte {
	buf = append(buf, b2c(nameless))
	buf = binary.AppendUvarint(buf, ct.id)
	for i, p := range m.parts {
		switch {
		case p == nil:
		case i == workspacePart && nameless:
			buf = append(buf, in.WorkspaceTerm.memoKey(m, m.nameless, true)...)
		case i == workspacePart && in.WorkspaceTerm != nil:
			buf = append(buf, in.WorkspaceTerm.memoKey(m, p, false)...)
		case !p.all && p.any == nil && parts[i] == nil && builtByField(i):
			// The members the policy reads, each built on its own: the
			// same bytes as encode over the whole part (TestMemoKeyByField).
			buf = append(buf, '{')
			for _, name := range p.names {
				if i == classificationPart {
					var ok bool
					if buf, ok = appendClassificationField(buf, p.keys[name], in.Classification, name); ok {
						continue
					}
				}
				if i == requestPart {
					var ok bool
					if buf, ok = appendRequestField(buf, &in.Request, name); ok {
						continue
					}
				}
				if t := partField(in, i, name); t != nil {
					buf = append(buf, '+')
					buf = encode(buf, p.keys[name], t.Value)
				} else {
					buf = append(buf, '-')
				}
			}
		default:
			buf = encode(buf, p, parts.get(in, i).Value)
		}
	}
	if m.cands != 0 {
		for i := range in.Candidates {
			c := &in.Candidates[i]
			if m.cands&readsQuality != 0 {
				buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(c.Quality))
			}
			if m.cands&readsHealthy != 0 {
				buf = append(buf, b2c(c.Healthy))
			}
		}
	}
	return buf
}

// shares says whether in's decision may be kept without its workspace's
// name (share.go).
func (m *memo) shares(in *Input) bool { return m.nameless != nil && in.WorkspaceTerm != nil }

// builtByField says whether part i is built member by member
// (partField): the request and its classification, which change with every
// request and of which a policy reads a few members.
func builtByField(i int) bool { return i == requestPart || i == classificationPart }

// partField is the member name of part i (builtByField), nil when absent.
func partField(in *Input, i int, name string) *ast.Term {
	if i == requestPart {
		return in.requestField(name)
	}
	return classificationField(in.Classification, name)
}

// appendRequestField appends what the key holds for the member name of
// input.request when it is one of its strings or flags ('+' and the
// value's encoding), without building its term: each was a term, two
// allocations, for every request whose policy reads it (the library reads
// request.api since 2026-12-07). ok is false for the others.
func appendRequestField(buf []byte, r *RequestFacts, name string) (_ []byte, ok bool) {
	switch name {
	case "path":
		return appendString(append(buf, '+'), r.Path), true
	case "api":
		return appendString(append(buf, '+'), r.API), true
	case "model":
		return appendString(append(buf, '+'), r.Model), true
	case "response_format":
		return appendString(append(buf, '+'), r.ResponseFormat), true
	case "user":
		return appendString(append(buf, '+'), r.User), true
	case "stream":
		return append(buf, '+', 'b', b2c(r.Stream)), true
	case "tools":
		return append(buf, '+', 'b', b2c(r.Tools)), true
	}
	return buf, false
}

// appendClassificationField appends what the key holds for the member
// name of input.classification read through p ('+' and encode(buf, p,
// value)), for the members made of scalars, the injection object read by
// its members and the type lists while they are empty, without building
// their terms: a request's key built a dozen terms for them, each an
// allocation or two (TestClassificationFieldBytes compares the bytes with
// the terms'). ok is false for the others (PII and term counts, findings
// to sort, the injection object read whole) and nothing is appended.
func appendClassificationField(buf []byte, p *paths, c *classify.Result, name string) (_ []byte, ok bool) {
	if c == nil {
		c = unclassified
	}
	switch name {
	case "task":
		return appendString(append(buf, '+'), c.Task), true
	case "task_confidence":
		return appendFloat(append(buf, '+'), c.TaskConfidence), true
	case "complexity":
		return appendString(append(buf, '+'), c.Complexity), true
	case "language":
		return appendString(append(buf, '+'), c.Language), true
	case "sensitivity":
		return appendString(append(buf, '+'), c.Sensitivity), true
	case "sensitivity_rule":
		return appendString(append(buf, '+'), c.SensitivityRule), true
	case "risk":
		return appendString(append(buf, '+'), c.Risk), true
	case "risk_rule":
		return appendString(append(buf, '+'), c.RiskRule), true
	case "scan":
		return appendString(append(buf, '+'), c.Scan), true
	case "scan_limit":
		return appendString(append(buf, '+'), c.ScanLimit), true
	case "input_tokens":
		return appendInt(append(buf, '+'), c.InputTokens), true
	case "secret_count":
		return appendInt(append(buf, '+'), len(c.Secrets)), true
	case "unread":
		return appendUnread(append(buf, '+'), p, c.Unread), true
	case "secret_types", "pii_types":
		if len(c.Secrets) > 0 || len(c.PIICounts) > 0 {
			return buf, false // findings to sort: the term path (rare)
		}
		return appendEmptyList(append(buf, '+'), p), true
	case "injection":
		if p.all || p.any != nil {
			return buf, false
		}
		buf = append(buf, '+', '{')
		for _, k := range p.names {
			switch k {
			case "score":
				buf = appendFloat(append(buf, '+'), InjectionScore(c.Injection.Score))
			case "detected":
				buf = append(buf, '+', 'b', b2c(c.Injection.Detected))
			default:
				buf = append(buf, '-')
			}
		}
		return buf, true
	}
	return buf, false
}

// sortedUnreadKinds are classify.UnreadKinds in the order an ast.Object
// keeps its keys.
var sortedUnreadKinds = func() []string {
	k := slices.Clone(classify.UnreadKinds[:])
	slices.Sort(k)
	return k
}()

// appendUnread appends encode(p, unreadTerm(m))'s bytes without building
// the term (every request has one; building it cost two allocations).
func appendUnread(buf []byte, p *paths, m map[string]int) []byte {
	switch {
	case p.all:
		buf = binary.AppendUvarint(append(buf, 'O'), uint64(len(sortedUnreadKinds)))
		for _, k := range sortedUnreadKinds {
			buf = appendInt(appendString(buf, k), m[k])
		}
		return buf
	case p.any != nil:
		buf = binary.AppendUvarint(append(buf, '{'), uint64(len(sortedUnreadKinds)))
		for _, k := range sortedUnreadKinds {
			buf = appendInt(appendString(buf, k), m[k]) // a number encodes whole through any path
		}
		return buf
	}
	buf = append(buf, '{')
	for _, name := range p.names {
		if slices.Contains(sortedUnreadKinds, name) {
			buf = appendInt(append(buf, '+'), m[name])
		} else {
			buf = append(buf, '-')
		}
	}
	return buf
}

// appendString, appendFloat and appendInt append encodeAll's bytes of
// ast.String(s), num(f) and ast.IntNumberTerm(n).
func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(append(buf, 's'), uint64(len(s)))
	return append(buf, s...)
}

func appendFloat(buf []byte, f float64) []byte {
	var b [32]byte
	return appendNumber(buf, strconv.AppendFloat(b[:0], f, 'g', -1, 64))
}

func appendInt(buf []byte, n int) []byte {
	var b [24]byte
	return appendNumber(buf, strconv.AppendInt(b[:0], int64(n), 10))
}

// appendNumber is encodeAll's encoding of a number by its digits.
func appendNumber[D ~string | ~[]byte](buf []byte, digits D) []byte {
	buf = binary.AppendUvarint(append(buf, 'n'), uint64(len(digits)))
	return append(buf, digits...)
}

// appendEmptyList appends encode(p, v)'s bytes of an empty array v.
func appendEmptyList(buf []byte, p *paths) []byte {
	switch {
	case p.all:
		return append(buf, 'A', 0)
	case p.any != nil:
		return append(buf, '[', 0)
	}
	return append(buf, '[')
}

func (m *memo) get(k []byte) *Decision {
	m.mu.RLock()
	d := m.cur[string(k)]
	var old *Decision
	if d == nil {
		old = m.prev[string(k)]
	}
	m.mu.RUnlock()
	if old != nil {
		m.put(k, old, false)
		return old
	}
	return d
}

// put keeps d under k. A fresh decision (no other request has seen it)
// has its values interned in the current generation in place; one carried
// over from the previous generation is shared already and stays as it is
// (its values are the previous generation's copies, dropped with the last
// entry that holds them).
func (m *memo) put(k []byte, d *Decision, fresh bool) {
	m.mu.Lock()
	if len(m.cur) >= memoSize {
		m.prev, m.cur = m.cur, make(map[string]*Decision, memoSize)
		m.shared = newInterned()
	}
	if fresh {
		m.shared.decision(d)
	}
	m.cur[string(k)] = d
	m.mu.Unlock()
}

// interned is one copy of each string and string map the decisions of a
// generation hold. Maps are found by an order-independent hash of their
// pairs and compared in full: two maps share one copy only when equal.
type interned struct {
	strs map[string]string
	maps map[uint64][]map[string]string
	seed maphash.Seed
}

func newInterned() *interned {
	return &interned{strs: map[string]string{}, maps: map[uint64][]map[string]string{}, seed: maphash.MakeSeed()}
}

func (in *interned) decision(d *Decision) {
	for i, s := range d.Deny {
		d.Deny[i] = in.str(s)
	}
	d.Exclude = in.strMap(d.Exclude)
	d.Tags = in.strMap(d.Tags)
}

func (in *interned) str(s string) string {
	if c, ok := in.strs[s]; ok {
		return c
	}
	in.strs[s] = s
	return s
}

func (in *interned) strMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	var sum uint64
	var h maphash.Hash
	h.SetSeed(in.seed)
	for k, v := range m {
		h.Reset()
		h.WriteString(k)
		h.WriteByte(0)
		h.WriteString(v)
		sum += h.Sum64()
	}
	for _, c := range in.maps[sum] {
		if maps.Equal(c, m) {
			return c
		}
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[in.str(k)] = in.str(v)
	}
	in.maps[sum] = append(in.maps[sum], c)
	return c
}

func b2c(b bool) byte {
	if b {
		return 't'
	}
	return 'f'
}

// encode appends the parts of v that p reads, unambiguously: every value
// starts with a type byte and strings with their length.
func encode(buf []byte, p *paths, v ast.Value) []byte {
	if p.all {
		return encodeAll(buf, v)
	}
	switch x := v.(type) {
	case ast.Object:
		buf = append(buf, '{')
		if p.any != nil {
			return encodeEachMember(buf, p, x)
		}
		for i, k := range p.terms {
			c := p.keys[p.names[i]]
			if c.conditional() && !c.readIn(x) {
				buf = append(buf, '?') // the policy cannot read it here
				continue
			}
			if e := x.Get(k); e != nil {
				buf = append(buf, '+')
				buf = encode(buf, c, e.Value)
			} else {
				buf = append(buf, '-')
			}
		}
		return buf
	case *ast.Array:
		// Only a variable or a number indexes an array.
		buf = append(buf, '[')
		if p.any != nil {
			buf = binary.AppendUvarint(buf, uint64(x.Len()))
			for i := range x.Len() {
				buf = encode(buf, p.any, x.Elem(i).Value)
			}
		}
		return buf
	}
	return encodeAll(buf, v) // sets and scalars: all of it
}

// encodeEachMember and encodeAllMembers are encode's and encodeAll's
// objects: ast.Object is walked with a closure, whose buffer Go moves to
// the heap in the function that declares it, so that function is not the
// one every scalar of a key goes through (two allocations an object, not
// one a value).
func encodeEachMember(buf []byte, p *paths, x ast.Object) []byte {
	buf = binary.AppendUvarint(buf, uint64(x.Len()))
	x.Foreach(func(k, e *ast.Term) {
		buf = encodeAll(buf, k.Value)
		c := p.any
		if s, ok := k.Value.(ast.String); ok && p.keys[string(s)] != nil {
			c = p.keys[string(s)]
		}
		buf = encode(buf, c, e.Value)
	})
	return buf
}

func encodeAllMembers(buf []byte, x ast.Object) []byte {
	buf = binary.AppendUvarint(buf, uint64(x.Len()))
	x.Foreach(func(k, e *ast.Term) {
		buf = encodeAll(buf, k.Value)
		buf = encodeAll(buf, e.Value)
	})
	return buf
}

func encodeAll(buf []byte, v ast.Value) []byte {
	switch x := v.(type) {
	case ast.String:
		return appendString(buf, string(x))
	case ast.Number:
		return appendNumber(buf, x)
	case ast.Boolean:
		return append(buf, 'b', b2c(bool(x)))
	case ast.Null:
		return append(buf, '0')
	case ast.Object:
		return encodeAllMembers(append(buf, 'O'), x)
	case *ast.Array:
		buf = append(buf, 'A')
		buf = binary.AppendUvarint(buf, uint64(x.Len()))
		for i := range x.Len() {
			buf = encodeAll(buf, x.Elem(i).Value)
		}
		return buf
	case ast.Set:
		buf = append(buf, 'S')
		buf = binary.AppendUvarint(buf, uint64(x.Len()))
		arr := x.Sorted()
		for i := range arr.Len() {
			buf = encodeAll(buf, arr.Elem(i).Value)
		}
		return buf
	}
	// Anything else never appears in a built input; keep the key exact.
	s := v.String()
	buf = append(buf, '?')
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}
