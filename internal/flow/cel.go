package flow

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"

	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/classify/task"
)

// Budget is one configured budget as a condition sees it:
// budgets["support-month"].ratio.
type Budget struct {
	// Ratio is (used + reserved) / limit.
	Ratio float64 `cel:"ratio"`
	// Exceeded once Ratio reaches 1; Warn from the budget's warn share.
	Exceeded bool `cel:"exceeded"`
	Warn     bool `cel:"warn"`
}

// Variable is one name a condition may use, for the reference
// (docs/routes.md lists the same table) and for error hints.
type Variable struct {
	Name string
	Type string // CEL type
	Doc  string
}

// Variables are every name of the condition environment.
var Variables = []Variable{
	{"request.model", "string", "the request's model field as sent (route:support, route:support@7)"},
	{"request.max_tokens", "int", "max_completion_tokens or max_tokens; 0 when unset"},
	{"request.stream", "bool", "the request streams"},
	{"request.tools", "bool", "the request offers tools (or legacy functions)"},
	{"request.vision", "bool", "a message carries an image"},
	{"request.audio", "bool", "a message carries audio input (an input_audio part)"},
	{"request.files", "bool", "a message carries a file (a PDF or another document inline, or by file_id)"},
	{"request.messages", "int", "number of messages"},
	{"request.user", "string", "the OpenAI user field; \"\" when unset"},
	{"request.response_format", "string", "response_format.type (text, json_object, json_schema); \"\" when unset"},
	{"metadata", "map(string, string)", "the body's metadata object (string values), or the x-stellwerk-metadata header's JSON object"},
	{"headers", "map(string, string)", "allow-listed request headers, lower-case names (default: user-agent, x-client-app, x-request-id)"},
	{"principal.key", "string", "the virtual key's id; \"\" when unauthenticated"},
	{"principal.workspace", "string", "the key's workspace"},
	{"principal.team", "string", "the key's team; \"\" when none"},
	{"principal.user", "string", "the key's user; \"\" when none"},
	{"principal.authenticated", "bool", "the request carried a valid key"},
	{"classification.task", "string", "code, math, reasoning, extraction, summarization, translation, creative_writing, knowledge_qa, classification or chat (docs/classify.md)"},
	{"classification.complexity", "string", "low, medium or high"},
	{"classification.risk", "string", "low, medium or high"},
	{"classification.sensitivity", "string", "public, internal, confidential or restricted"},
	{"classification.language", "string", "ISO 639-1 code of the prompt's language, \"\" when unknown"},
	{"classification.pii", "bool", "personal data was found"},
	{"classification.secrets", "bool", "a secret (API key, private key, …) was found"},
	{"classification.injection", "bool", "a prompt injection was detected"},
	{"classification.input_tokens", "int", "estimated prompt tokens"},
	{"classification.scan_complete", "bool", "every text of the request was scanned (no cap hit)"},
	{"budgets", "map(string, flow.Budget)", "configured budgets by name for this request's subject: .ratio (double), .exceeded (bool), .warn (bool)"},
	{"now", "google.protobuf.Timestamp", "when the request arrived (deterministic on replay)"},
}

// Enumerated are the variables that take only the listed values: a
// condition comparing one with anything else can never hold (or, for !=,
// always does), so it is refused in a new version and warned of in a
// stored one.
var Enumerated = map[string][]string{
	"classification.task":        task.Tasks,
	"classification.complexity":  {classify.Low, classify.Medium, classify.High},
	"classification.risk":        classify.RiskLevels,
	"classification.sensitivity": classify.SensitivityLevels,
}

// Cost bounds. A condition's worst case is estimated at load and refused
// above MaxCost; evaluation stops at the same limit, so no condition can
// run away whatever the request holds.
const MaxCost = 10_000

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	opts := []cel.EnvOption{
		ext.NativeTypes(reflect.TypeFor[Budget](), ext.ParseStructTags(true)),
		cel.OptionalTypes(),
		ext.Strings(),
		cel.ParserExpressionSizeLimit(MaxCondition),
	}
	for _, v := range Variables {
		opts = append(opts, cel.Variable(v.Name, celType(v.Type)))
	}
	return cel.NewEnv(opts...)
})

func celType(t string) *cel.Type {
	switch t {
	case "string":
		return cel.StringType
	case "int":
		return cel.IntType
	case "bool":
		return cel.BoolType
	case "map(string, string)":
		return cel.MapType(cel.StringType, cel.StringType)
	case "map(string, flow.Budget)":
		return cel.MapType(cel.StringType, cel.ObjectType("flow.Budget"))
	case "google.protobuf.Timestamp":
		return cel.TimestampType
	}
	panic("flow: no CEL type for " + t)
}

// sizes bound what the edge passes, for the cost estimate.
type sizes struct{ headers int }

func (s sizes) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		return nil
	}
	switch {
	case path[0] == "metadata" && len(path) == 1:
		return &cost.SizeEstimate{Min: 0, Max: 16}
	case path[0] == "metadata":
		return &cost.SizeEstimate{Min: 0, Max: 512}
	case path[0] == "headers" && len(path) == 1:
		return &cost.SizeEstimate{Min: 0, Max: uint64(max(s.headers, 1))}
	case path[0] == "budgets" && len(path) == 1:
		return &cost.SizeEstimate{Min: 0, Max: 256}
	case n.Type() == types.StringType:
		return &cost.SizeEstimate{Min: 0, Max: 512}
	}
	return nil
}

func (sizes) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

// condition is one compiled `if`.
type condition struct {
	src  string
	prg  cel.Program
	uses uses
	// never are comparisons with a value an enumerated variable never
	// has: the condition compiles, but a new version may not keep them.
	never []exprError
}

// uses records what a condition reads, so evaluation builds only that.
type uses struct {
	budgets bool
}

// compileCondition type-checks src as a bool over the environment, checks
// header names and budget names against env, and estimates its cost.
// Errors carry the expression's own line and 0-based column.
func compileCondition(src string, env *Env) (*condition, []exprError) {
	e, err := celEnv()
	if err != nil {
		return nil, []exprError{{msg: "the condition environment: " + err.Error()}}
	}
	if strings.TrimSpace(src) == "" {
		return nil, []exprError{{msg: "empty condition"}}
	}
	if len(src) > MaxCondition {
		return nil, []exprError{{msg: fmt.Sprintf("the condition is %d bytes, more than %d", len(src), MaxCondition)}}
	}
	checked, iss := e.Compile(src)
	if iss != nil && iss.Err() != nil {
		var out []exprError
		for _, ce := range iss.Errors() {
			out = append(out, exprError{line: ce.Location.Line(), col: ce.Location.Column(), msg: hint(ce.Message)})
		}
		return nil, out
	}
	if checked.OutputType() != cel.BoolType {
		return nil, []exprError{{line: 1, msg: fmt.Sprintf("a condition must be a bool, this one is a %s", checked.OutputType())}}
	}
	c := &condition{src: src}
	var out []exprError
	loc := func(id int64) (int, int) {
		l := checked.NativeRep().SourceInfo().GetStartLocation(id)
		return l.Line(), l.Column()
	}
	nav := ast.NavigateAST(checked.NativeRep())
	for _, x := range ast.MatchDescendants(nav, ast.AllMatcher()) {
		name, key, ok := mapKey(x)
		if !ok {
			continue
		}
		switch name {
		case "budgets":
			c.uses.budgets = true
			if key != "" && env != nil && env.Budgets != nil && !env.hasBudget(key) {
				l, col := loc(x.ID())
				out = append(out, exprError{line: l, col: col, msg: fmt.Sprintf("unknown budget %q (configured: %s)", key, list(env.Budgets))})
			}
		case "headers":
			if key != "" && !env.hasHeader(key) {
				l, col := loc(x.ID())
				msg := fmt.Sprintf("header %q is not passed to routes (allowed: %s)", key, list(env.headers()))
				if key != strings.ToLower(key) {
					msg = fmt.Sprintf("header names are lower-case: %q", strings.ToLower(key))
				}
				out = append(out, exprError{line: l, col: col, msg: msg})
			}
		}
	}
	if len(out) > 0 {
		return nil, out
	}
	c.never = neverValues(checked.NativeRep(), nav, loc)
	est, err := e.EstimateCost(checked, sizes{headers: len(env.headers())})
	if err != nil {
		return nil, []exprError{{line: 1, msg: "cannot estimate the condition's cost: " + err.Error()}}
	}
	if est.Max > MaxCost {
		return nil, []exprError{{line: 1, msg: fmt.Sprintf("the condition may cost up to %d, more than the limit of %d: "+
			"iterate less (metadata has at most 16 entries)", est.Max, MaxCost)}}
	}
	c.prg, err = e.Program(checked, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(MaxCost))
	if err != nil {
		return nil, []exprError{{line: 1, msg: err.Error()}}
	}
	return c, nil
}

// exprError is a CEL error at a 1-based line and 0-based column of the
// expression.
type exprError struct {
	line, col int
	msg       string
}

// mapKey recognises headers["x"], headers.x, budgets["x"] (and the
// optional forms): the map's name and the constant key ("" when the key is
// not a constant).
func mapKey(x ast.NavigableExpr) (name, key string, ok bool) {
	var operand ast.Expr
	switch x.Kind() {
	case ast.SelectKind:
		s := x.AsSelect()
		operand, key = s.Operand(), s.FieldName()
	case ast.CallKind:
		c := x.AsCall()
		if (c.FunctionName() != "_[_]" && c.FunctionName() != "_[?_]") || len(c.Args()) != 2 {
			return "", "", false
		}
		operand = c.Args()[0]
		if k := c.Args()[1]; k.Kind() == ast.LiteralKind {
			if s, isStr := k.AsLiteral().(types.String); isStr {
				key = string(s)
			}
		}
	default:
		return "", "", false
	}
	if operand.Kind() != ast.IdentKind {
		return "", "", false
	}
	name = operand.AsIdent()
	return name, key, name == "headers" || name == "budgets"
}

// neverValues finds comparisons of an enumerated variable with a string
// literal it never takes: x == "v", "v" == x, x != "v" and x in ["v", …].
func neverValues(a *ast.AST, nav ast.NavigableExpr, loc func(int64) (int, int)) []exprError {
	variable := func(e ast.Expr) (string, []string) {
		r := a.ReferenceMap()[e.ID()]
		if r == nil || r.Name == "" || (e.Kind() != ast.SelectKind && e.Kind() != ast.IdentKind) {
			return "", nil
		}
		return r.Name, Enumerated[r.Name]
	}
	var out []exprError
	// check reports lit when no value of the variable matches it.
	check := func(name string, allowed []string, lit ast.Expr, holds string, match func(v, lit string) bool, never string) {
		if lit.Kind() != ast.LiteralKind {
			return
		}
		s, ok := lit.AsLiteral().(types.String)
		if !ok || slices.ContainsFunc(allowed, func(v string) bool { return match(v, string(s)) }) {
			return
		}
		l, col := loc(lit.ID())
		out = append(out, exprError{line: l, col: col, msg: fmt.Sprintf("%s %s %q: the comparison %s (its values: %s)",
			name, never, string(s), holds, strings.Join(allowed, ", "))})
	}
	equal := func(v, lit string) bool { return v == lit }
	for _, x := range ast.MatchDescendants(nav, ast.KindMatcher(ast.CallKind)) {
		call := x.AsCall()
		args := call.Args()
		if call.IsMemberFunction() && len(args) == 1 {
			// classification.task.startsWith("summ"): no value of the
			// variable starts (ends, contains) so (the red team).
			var match func(v, lit string) bool
			never := ""
			switch call.FunctionName() {
			case "startsWith":
				match, never = strings.HasPrefix, "never starts with"
			case "endsWith":
				match, never = strings.HasSuffix, "never ends with"
			case "contains":
				match, never = strings.Contains, "never contains"
			}
			if name, allowed := variable(call.Target()); allowed != nil && match != nil {
				check(name, allowed, args[0], "never holds", match, never)
			}
			continue
		}
		if len(args) != 2 {
			continue
		}
		switch fn := call.FunctionName(); fn {
		case operators.Equals, operators.NotEquals:
			holds := "never holds"
			if fn == operators.NotEquals {
				holds = "always holds"
			}
			for _, i := range []int{0, 1} {
				if name, allowed := variable(args[i]); allowed != nil {
					check(name, allowed, args[1-i], holds, equal, "is never")
				}
			}
		case operators.In:
			if args[1].Kind() != ast.ListKind {
				continue
			}
			elems := args[1].AsList().Elements()
			if name, allowed := variable(args[0]); allowed != nil {
				for _, e := range elems {
					check(name, allowed, e, "never holds for it", equal, "is never")
				}
			}
			// "summarize" in [classification.task]: the same comparison.
			for _, e := range elems {
				if name, allowed := variable(e); allowed != nil {
					check(name, allowed, args[0], "never holds for it", equal, "is never")
				}
			}
		}
	}
	return out
}

// hint turns the checker's "undeclared reference to 'request'" for
// request.foo into a list of what there is.
func hint(msg string) string {
	for _, prefix := range []string{"request", "principal", "classification"} {
		if msg == "undeclared reference to '"+prefix+"'" {
			var names []string
			for _, v := range Variables {
				if n, ok := strings.CutPrefix(v.Name, prefix+"."); ok {
					names = append(names, n)
				}
			}
			return fmt.Sprintf("unknown field of %s (it has: %s)", prefix, strings.Join(names, ", "))
		}
	}
	if strings.HasPrefix(msg, "undeclared reference to ") {
		var names []string
		for _, v := range Variables {
			n, _, _ := strings.Cut(v.Name, ".")
			if len(names) == 0 || names[len(names)-1] != n {
				names = append(names, n)
			}
		}
		return msg + " (the variables are: " + strings.Join(names, ", ") + ")"
	}
	return msg
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	c := append([]string(nil), s...)
	sort.Strings(c)
	return strings.Join(c, ", ")
}
