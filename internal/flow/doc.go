// Package flow is a named route: a small flow of nodes (conditions, splits,
// rate and budget limits, models, fallback chains, ends) that a request
// naming `model: "route:<name>"` runs through before selection. It parses
// the route document (routes/*.yaml, or a version kept in the store),
// compiles its CEL conditions once, and evaluates a flow for one request in
// microseconds, deterministically given its inputs, so an audit record can
// be replayed.
//
// Users say "route"; in code a route's compiled document is a *Flow, and
// internal/decision is the decision pipeline (classify → policy → select)
// that runs one. docs/routes.md is the reference.
package flow

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Doc is a route document as written: plain data, before its conditions
// are compiled. Pos fields locate each part in the source for errors.
type Doc struct {
	Route       string `json:"route"`
	Description string `json:"description,omitempty"`
	// Workspaces, if set, are the only workspaces whose callers may use
	// the route; to the others it does not exist.
	Workspaces []string `json:"workspaces,omitempty"`
	// Start is the first node's id; default the first node listed.
	Start string    `json:"start,omitempty"`
	Nodes []NodeDoc `json:"nodes"`

	pos map[string]Pos // field path ("route", "nodes[2].if") → position
	src []byte
}

// NodeDoc is one node as written. Exactly one of If, Split, Model,
// RateLimit, BudgetLimit, Chain and End is set.
type NodeDoc struct {
	ID string `json:"id"`

	// If is a CEL condition; Then and Else are the node ids it leads to.
	If   string `json:"if,omitempty"`
	Then string `json:"then,omitempty"`
	Else string `json:"else,omitempty"`

	Split *SplitDoc `json:"split,omitempty"`

	// Model is a catalog model id, or "auto" with the optional Objective,
	// MinQuality, Allow and Deny.
	Model      string   `json:"model,omitempty"`
	Objective  string   `json:"objective,omitempty"`
	MinQuality float64  `json:"min_quality,omitempty"`
	Allow      []string `json:"allow,omitempty"`
	Deny       []string `json:"deny,omitempty"`

	RateLimit   *RateLimitDoc   `json:"rate_limit,omitempty"`
	BudgetLimit *BudgetLimitDoc `json:"budget_limit,omitempty"`
	// Next is where a limit node goes while under its limit, Fallback where
	// it goes once the limit is reached.
	Next     string `json:"next,omitempty"`
	Fallback string `json:"fallback,omitempty"`

	// Chain lists model nodes in order of preference: the first the policy
	// allows serves, the others are its fallbacks.
	Chain []string `json:"chain,omitempty"`

	// OnUnavailable is what a model or chain node does when none of its
	// targets can serve (the policy excludes them, they cool down, no
	// model meets the request's needs): fallback (default: selection
	// chooses as for auto) or refuse (the client gets the error).
	OnUnavailable string `json:"on_unavailable,omitempty"`

	End *EndDoc `json:"end,omitempty"`
}

// SplitDoc divides traffic between arms by weight.
type SplitDoc struct {
	// Sticky keeps one subject on one arm: none (default: per request),
	// user, request.user, key, or metadata.<field>.
	Sticky string   `json:"sticky,omitempty"`
	Arms   []ArmDoc `json:"arms"`
}

// ArmDoc is one arm of a split.
type ArmDoc struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight"`
	Next   string  `json:"next"`
}

// RateLimitDoc counts the requests passing the node.
type RateLimitDoc struct {
	RequestsPerMinute int64 `json:"requests_per_minute,omitempty"`
	RequestsPerDay    int64 `json:"requests_per_day,omitempty"`
	// Per is whose requests are counted: key (default), user, team,
	// workspace, or route (all of them together).
	Per string `json:"per,omitempty"`
	// Fail is what happens when the count cannot be checked (the state
	// store is down): open (default: go on to next) or closed (take the
	// fallback).
	Fail string `json:"fail,omitempty"`
}

// BudgetLimitDoc fires when a configured budget reaches a share of its
// limit.
type BudgetLimitDoc struct {
	Budget string `json:"budget"`
	// At is the share of the budget at which the fallback is taken
	// (default 1: exhausted).
	At float64 `json:"at,omitempty"`
}

// EndDoc refuses the request with a status and a message.
type EndDoc struct {
	Status  int    `json:"status,omitempty"`
	Message string `json:"message"`
}

// Pos is a position in a route's source: 1-based line and column, zero
// when unknown.
type Pos struct{ Line, Column int }

// Error is one problem of a route document: where it is and what is wrong.
type Error struct {
	// Source names the document: a file path, "support@7", or "request".
	Source string `json:"source,omitempty"`
	Route  string `json:"route,omitempty"`
	Node   string `json:"node,omitempty"`
	// Field is the path inside the document: "nodes[2].if", "split.arms[1].weight".
	Field  string `json:"field,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Msg    string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Column > 0 {
				fmt.Fprintf(&b, ":%d", e.Column)
			}
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d, column %d: ", e.Line, e.Column)
	}
	if e.Route != "" {
		b.WriteString("route " + e.Route)
		if e.Node != "" {
			b.WriteString(", node " + e.Node)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadError is every problem found in one document.
type LoadError struct {
	Errs []*Error
}

func (e *LoadError) Error() string {
	s := make([]string, len(e.Errs))
	for i, x := range e.Errs {
		s[i] = x.Error()
	}
	return strings.Join(s, "\n")
}

// Errors returns the problems an error of Parse, Compile or Load carries
// (one unlocated Error for any other error).
func Errors(err error) []*Error {
	var le *LoadError
	if errors.As(err, &le) {
		return le.Errs
	}
	if err == nil {
		return nil
	}
	return []*Error{{Msg: err.Error()}}
}

// Limits of a document, so a route cannot make loading or evaluation slow.
const (
	MaxDocument   = 256 << 10
	MaxNodes      = 256
	MaxArms       = 32
	MaxChain      = 16
	MaxCondition  = 4096 // bytes of one CEL expression
	MaxListLength = 256
)

var (
	// NameRE is a route's name: it appears in model names (route:<name>@7),
	// headers and URLs.
	NameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	idRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)
)

// parser walks the YAML node tree, collecting every problem.
type parser struct {
	source string
	route  string
	errs   []*Error
	pos    map[string]Pos
}

func (p *parser) fail(n *yaml.Node, node, field, format string, args ...any) {
	e := &Error{Source: p.source, Route: p.route, Node: node, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

// Parse decodes a route document strictly: unknown fields, wrong types,
// duplicate keys and a second document are errors, each with its position.
// source names the document in errors (a file path, "support@7").
func Parse(source string, data []byte) (*Doc, error) {
	p := &parser{source: source, pos: map[string]Pos{}}
	if len(data) > MaxDocument {
		p.fail(nil, "", "", "the document is %d bytes, more than %d", len(data), MaxDocument)
		return nil, &LoadError{p.errs}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		e := &Error{Source: source, Msg: "not valid YAML: " + msg}
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = "not valid YAML: " + strings.TrimPrefix(msg, m[0])
		}
		if errors.Is(err, io.EOF) {
			e.Msg = "the document is empty"
		}
		return nil, &LoadError{[]*Error{e}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.fail(&extra, "", "", "a route file holds one document; this is a second one")
	}
	doc := &Doc{pos: p.pos, src: data}
	m := &root
	if m.Kind == yaml.DocumentNode && len(m.Content) == 1 {
		m = m.Content[0]
	}
	if m.Kind != yaml.MappingNode {
		p.fail(m, "", "", "a route document is a mapping with route and nodes")
		return nil, &LoadError{p.errs}
	}
	// The name first, so every later error names the route.
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "route" {
			doc.Route = p.str(m.Content[i+1], "", "route")
			p.route = doc.Route
		}
	}
	var nodes *yaml.Node
	p.fields(m, "", "", func(key string, k, v *yaml.Node) {
		switch key {
		case "route":
			p.pos["route"] = at(v)
			if doc.Route != "" && !NameRE.MatchString(doc.Route) {
				p.fail(v, "", "route", "%q is not a route name: lower-case letters, digits, - and _ (at most 63)", doc.Route)
			}
		case "description":
			doc.Description = p.str(v, "", "description")
		case "start":
			doc.Start = p.str(v, "", "start")
			p.pos["start"] = at(v)
		case "workspaces":
			doc.Workspaces = p.list(v, "", "", "workspaces")
		case "nodes":
			nodes = v
		default:
			p.fail(k, "", "", "unknown field %q (a route has route, description, workspaces, start and nodes)", key)
		}
	})
	if doc.Route == "" {
		p.fail(m, "", "route", "required: the route's name")
	}
	switch {
	case nodes == nil:
		p.fail(m, "", "nodes", "required: the route's nodes")
	case nodes.Kind != yaml.SequenceNode:
		p.fail(nodes, "", "nodes", "must be a list of nodes")
	case len(nodes.Content) == 0:
		p.fail(nodes, "", "nodes", "must list at least one node")
	case len(nodes.Content) > MaxNodes:
		p.fail(nodes, "", "nodes", "%d nodes, more than %d", len(nodes.Content), MaxNodes)
	default:
		for i, n := range nodes.Content {
			doc.Nodes = append(doc.Nodes, p.node(n, i))
		}
	}
	if len(p.errs) > 0 {
		return nil, &LoadError{p.errs}
	}
	return doc, nil
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): `)

func at(n *yaml.Node) Pos { return Pos{n.Line, n.Column} }

// fields calls f for each key of a mapping, refusing duplicate keys.
func (p *parser) fields(m *yaml.Node, node, field string, f func(key string, k, v *yaml.Node)) {
	if m.Kind != yaml.MappingNode {
		p.fail(m, node, field, "must be a mapping")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.fail(k, node, field, "keys must be plain names")
			continue
		}
		if seen[k.Value] {
			p.fail(k, node, join(field, k.Value), "given twice")
			continue
		}
		seen[k.Value] = true
		f(k.Value, k, v)
	}
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func (p *parser) str(v *yaml.Node, node, field string) string {
	switch {
	case v.Kind != yaml.ScalarNode:
		p.fail(v, node, field, "must be a string")
		return ""
	case v.Tag == "!!null":
		return ""
	}
	return v.Value
}

func (p *parser) num(v *yaml.Node, node, field string) float64 {
	if v.Kind != yaml.ScalarNode || (v.Tag != "!!int" && v.Tag != "!!float") {
		p.fail(v, node, field, "must be a number")
		return 0
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(v.Value, "_", ""), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.fail(v, node, field, "must be a finite number")
		return 0
	}
	return f
}

func (p *parser) integer(v *yaml.Node, node, field string) int64 {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
		p.fail(v, node, field, "must be a whole number")
		return 0
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(v.Value, "_", ""), 0, 64)
	if err != nil {
		p.fail(v, node, field, "must be a whole number")
	}
	return n
}

func (p *parser) list(v *yaml.Node, node, base, field string) []string {
	if v.Kind != yaml.SequenceNode {
		p.fail(v, node, field, "must be a list")
		return nil
	}
	if len(v.Content) > MaxListLength {
		p.fail(v, node, field, "%d entries, more than %d", len(v.Content), MaxListLength)
		return nil
	}
	out := make([]string, 0, len(v.Content))
	for i, e := range v.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		if e.Kind != yaml.ScalarNode {
			p.fail(e, node, f, "must be a string")
			continue
		}
		p.pos[base+"."+f] = at(e)
		out = append(out, e.Value)
	}
	return out
}

// kinds are the keys that make a node what it is.
var kinds = []string{"if", "split", "model", "rate_limit", "budget_limit", "chain", "end"}

func (p *parser) node(n *yaml.Node, i int) NodeDoc {
	var d NodeDoc
	base := fmt.Sprintf("nodes[%d]", i)
	if n.Kind != yaml.MappingNode {
		p.fail(n, "", base, "a node is a mapping with an id and one of: %s", strings.Join(kinds, ", "))
		return d
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == "id" {
			d.ID = p.str(n.Content[j+1], "", base+".id")
			p.pos[base+".id"] = at(n.Content[j+1])
		}
	}
	id := d.ID
	if id == "" {
		id = base
		p.fail(n, "", base+".id", "required: the node's id")
	} else if !idRE.MatchString(d.ID) {
		p.fail(n, "", base+".id", "%q is not a node id: letters, digits, - and _ (at most 63)", d.ID)
	}
	p.pos[base] = at(n)
	var kind []string
	p.fields(n, id, "", func(key string, k, v *yaml.Node) {
		p.pos[base+"."+key] = at(v)
		switch key {
		case "id":
		case "if":
			kind = append(kind, key)
			d.If = p.str(v, id, key)
			p.pos[base+".if"] = exprPos(v)
		case "then":
			d.Then = p.str(v, id, key)
		case "else":
			d.Else = p.str(v, id, key)
		case "split":
			kind = append(kind, key)
			d.Split = p.split(v, id, base)
		case "model":
			kind = append(kind, key)
			d.Model = p.str(v, id, key)
		case "objective":
			d.Objective = p.str(v, id, key)
		case "min_quality":
			d.MinQuality = p.num(v, id, key)
		case "allow":
			d.Allow = p.list(v, id, base, key)
		case "deny":
			d.Deny = p.list(v, id, base, key)
		case "rate_limit":
			kind = append(kind, key)
			d.RateLimit = p.rateLimit(v, id)
		case "budget_limit":
			kind = append(kind, key)
			d.BudgetLimit = p.budgetLimit(v, id)
		case "next":
			d.Next = p.str(v, id, key)
		case "fallback":
			d.Fallback = p.str(v, id, key)
		case "chain":
			kind = append(kind, key)
			d.Chain = p.list(v, id, base, key)
		case "on_unavailable":
			d.OnUnavailable = p.str(v, id, key)
		case "end":
			kind = append(kind, key)
			d.End = p.end(v, id)
		default:
			p.fail(k, id, "", "unknown field %q", key)
		}
	})
	switch len(kind) {
	case 0:
		p.fail(n, id, "", "a node needs one of: %s", strings.Join(kinds, ", "))
	case 1:
	default:
		p.fail(n, id, "", "a node is one kind, this one has %s", strings.Join(kind, " and "))
	}
	return d
}

// exprPos is where a CEL expression's first character is: after the
// quote of a quoted scalar, on the line after a block scalar's indicator.
func exprPos(v *yaml.Node) Pos {
	switch v.Style {
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		return Pos{v.Line, v.Column + 1}
	case yaml.LiteralStyle, yaml.FoldedStyle:
		return Pos{v.Line + 1, 0} // the column is the block's indentation, found by the caller
	}
	return Pos{v.Line, v.Column}
}

func (p *parser) split(v *yaml.Node, id, base string) *SplitDoc {
	s := &SplitDoc{}
	var arms *yaml.Node
	p.fields(v, id, "split", func(key string, k, v *yaml.Node) {
		switch key {
		case "sticky":
			s.Sticky = p.str(v, id, "split.sticky")
			p.pos[base+".split.sticky"] = at(v)
		case "arms":
			arms = v
		default:
			p.fail(k, id, "split", "unknown field %q (a split has sticky and arms)", key)
		}
	})
	switch {
	case arms == nil:
		p.fail(v, id, "split.arms", "required: at least two arms")
	case arms.Kind != yaml.SequenceNode:
		p.fail(arms, id, "split.arms", "must be a list of arms")
	case len(arms.Content) > MaxArms:
		p.fail(arms, id, "split.arms", "%d arms, more than %d", len(arms.Content), MaxArms)
	default:
		for i, a := range arms.Content {
			f := fmt.Sprintf("split.arms[%d]", i)
			p.pos[base+"."+f] = at(a)
			var arm ArmDoc
			weight := false
			p.fields(a, id, f, func(key string, k, v *yaml.Node) {
				p.pos[base+"."+f+"."+key] = at(v)
				switch key {
				case "name":
					arm.Name = p.str(v, id, f+".name")
				case "weight":
					arm.Weight, weight = p.num(v, id, f+".weight"), true
				case "next":
					arm.Next = p.str(v, id, f+".next")
				default:
					p.fail(k, id, f, "unknown field %q (an arm has name, weight and next)", key)
				}
			})
			if !weight && a.Kind == yaml.MappingNode {
				p.fail(a, id, f+".weight", "required")
			}
			s.Arms = append(s.Arms, arm)
		}
	}
	return s
}

func (p *parser) rateLimit(v *yaml.Node, id string) *RateLimitDoc {
	r := &RateLimitDoc{}
	p.fields(v, id, "rate_limit", func(key string, k, v *yaml.Node) {
		f := "rate_limit." + key
		switch key {
		case "requests_per_minute":
			r.RequestsPerMinute = p.integer(v, id, f)
		case "requests_per_day":
			r.RequestsPerDay = p.integer(v, id, f)
		case "per":
			r.Per = p.str(v, id, f)
		case "fail":
			r.Fail = p.str(v, id, f)
		default:
			p.fail(k, id, "rate_limit", "unknown field %q (a rate limit has requests_per_minute, requests_per_day, per and fail)", key)
		}
	})
	return r
}

func (p *parser) budgetLimit(v *yaml.Node, id string) *BudgetLimitDoc {
	b := &BudgetLimitDoc{}
	p.fields(v, id, "budget_limit", func(key string, k, v *yaml.Node) {
		switch key {
		case "budget":
			b.Budget = p.str(v, id, "budget_limit.budget")
		case "at":
			b.At = p.num(v, id, "budget_limit.at")
		default:
			p.fail(k, id, "budget_limit", "unknown field %q (a budget limit has budget and at)", key)
		}
	})
	return b
}

func (p *parser) end(v *yaml.Node, id string) *EndDoc {
	e := &EndDoc{}
	p.fields(v, id, "end", func(key string, k, v *yaml.Node) {
		switch key {
		case "status":
			e.Status = int(p.integer(v, id, "end.status"))
		case "message":
			e.Message = p.str(v, id, "end.message")
		default:
			p.fail(k, id, "end", "unknown field %q (an end has status and message)", key)
		}
	})
	return e
}
