// Package reqpolicy parses the per-request policy a client may send (the
// body's `policy` object or the x-stellwerk-policy header): strictly
// validated, canonicalised and fingerprinted. It only says what the client
// asked for; whether that may loosen anything is the Rego policy's call.
package reqpolicy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

// Policy is a validated per-request policy. Zero values mean "not set".
type Policy struct {
	Optimize   string   `json:"optimize,omitempty"`
	Residency  string   `json:"residency,omitempty"`
	MaxRisk    string   `json:"max_risk,omitempty"`
	MaxCost    float64  `json:"max_cost,omitempty"`
	SLAMS      int      `json:"sla_ms,omitempty"`
	MinQuality *float64 `json:"min_quality,omitempty"`
	Allow      []string `json:"allow,omitempty"`
	Deny       []string `json:"deny,omitempty"`
	// Fallback, when set, says whether another eligible model may answer
	// when the chosen one's provider fails: true lets a pinned model fail
	// over (off by default), false keeps even an "auto" request on the
	// model chosen first.
	Fallback *bool `json:"fallback,omitempty"`
	// Fingerprint is the first 16 hex digits of the SHA-256 of the
	// canonical JSON; "" when no policy was sent.
	Fingerprint string `json:"-"`
	// Set is true when the client sent a policy (even an empty one).
	Set bool `json:"-"`
}

var (
	objectives  = []string{"cost", "latency", "accuracy", "balanced"}
	residencies = []string{"eu", "on_prem", "any"}
	risks       = []string{"low", "medium", "high"}
)

// maxListLen bounds allow/deny lists.
const maxListLen = 256

// FromBody parses the body's policy member (absent or null → zero Policy).
func FromBody(v gjson.Result) (Policy, error) {
	if !v.Exists() || v.Type == gjson.Null {
		return Policy{}, nil
	}
	return parse(v, "policy")
}

// FromHeader parses the x-stellwerk-policy header value.
func FromHeader(h string) (Policy, error) {
	if !gjson.Valid(h) {
		return Policy{}, apierr.Invalid("invalid_policy", "x-stellwerk-policy", "the x-stellwerk-policy header is not valid JSON")
	}
	return parse(gjson.Parse(h), "x-stellwerk-policy")
}

func parse(v gjson.Result, where string) (Policy, error) {
	if !v.IsObject() {
		return Policy{}, bad(where, "", "must be a JSON object")
	}
	p := Policy{Set: true}
	var err error
	seen := map[string]bool{}
	v.ForEach(func(k, val gjson.Result) bool {
		field := k.Str
		if seen[field] {
			err = bad(where, field, "appears more than once")
			return false
		}
		seen[field] = true
		switch field {
		case "optimize":
			p.Optimize, err = oneOf(where, field, val, objectives)
		case "residency":
			p.Residency, err = oneOf(where, field, val, residencies)
		case "max_risk":
			p.MaxRisk, err = oneOf(where, field, val, risks)
		case "max_cost":
			if val.Type != gjson.Number || val.Num <= 0 || val.Num > 1e6 {
				err = bad(where, field, "must be a positive number of EUR")
			}
			p.MaxCost = val.Num
		case "sla_ms":
			if val.Type != gjson.Number || val.Num != float64(int64(val.Num)) || val.Num < 1 || val.Num > 3_600_000 {
				err = bad(where, field, "must be a positive integer number of milliseconds")
			}
			p.SLAMS = int(val.Num)
		case "min_quality":
			if val.Type != gjson.Number || val.Num < 0 || val.Num > 1 {
				err = bad(where, field, "must be a number between 0 and 1")
			}
			q := val.Num
			p.MinQuality = &q
		case "allow":
			p.Allow, err = list(where, field, val)
		case "deny":
			p.Deny, err = list(where, field, val)
		case "fallback":
			if val.Type != gjson.True && val.Type != gjson.False {
				err = bad(where, field, "must be true or false")
			}
			b := val.Type == gjson.True
			p.Fallback = &b
		default:
			err = bad(where, field, "is not a policy field (known: optimize, residency, max_risk, max_cost, sla_ms, min_quality, allow, deny, fallback)")
		}
		return err == nil
	})
	if err != nil {
		return Policy{}, err
	}
	p.Fingerprint = fingerprint(p)
	return p, nil
}

func oneOf(where, field string, v gjson.Result, allowed []string) (string, error) {
	if v.Type != gjson.String || !slices.Contains(allowed, v.Str) {
		return "", bad(where, field, "%s is not one of %s", show(v), strings.Join(allowed, ", "))
	}
	return v.Str, nil
}

func list(where, field string, v gjson.Result) ([]string, error) {
	if !v.IsArray() {
		return nil, bad(where, field, "must be an array of model ids or provider:<name>")
	}
	var out []string
	var err error
	v.ForEach(func(_, e gjson.Result) bool {
		if e.Type != gjson.String || e.Str == "" || len(e.Str) > 200 {
			err = bad(where, field, "entries must be model ids or provider:<name>")
			return false
		}
		if len(out) == maxListLen {
			err = bad(where, field, "has more than %d entries", maxListLen)
			return false
		}
		out = append(out, e.Str)
		return true
	})
	slices.Sort(out)
	return slices.Compact(out), err
}

// show renders a rejected value for an error message, bounded.
func show(v gjson.Result) string {
	s := v.Raw
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}

func bad(where, field, format string, args ...any) error {
	param := where
	if field != "" {
		param = where + "." + field
	}
	if len(param) > 80 {
		param = param[:80] + "…"
	}
	e := apierr.Invalid("invalid_policy", param, format, args...)
	e.Message = param + ": " + e.Message
	return e
}

// fingerprint hashes the canonical JSON: fields in a fixed order, lists
// sorted and de-duplicated, numbers in their shortest form.
func fingerprint(p Policy) string {
	h := sha256.Sum256([]byte(Canonical(p)))
	return hex.EncodeToString(h[:8])
}

// Canonical renders p as canonical JSON.
func Canonical(p Policy) string {
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	field := func(name, raw string) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteString(strconv.Quote(name))
		b.WriteByte(':')
		b.WriteString(raw)
	}
	strList := func(l []string) string {
		x, _ := json.Marshal(l)
		return string(x)
	}
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	if len(p.Allow) > 0 {
		field("allow", strList(p.Allow))
	}
	if len(p.Deny) > 0 {
		field("deny", strList(p.Deny))
	}
	if p.Fallback != nil {
		field("fallback", strconv.FormatBool(*p.Fallback))
	}
	if p.MaxCost > 0 {
		field("max_cost", num(p.MaxCost))
	}
	if p.MaxRisk != "" {
		field("max_risk", strconv.Quote(p.MaxRisk))
	}
	if p.MinQuality != nil {
		field("min_quality", num(*p.MinQuality))
	}
	if p.Optimize != "" {
		field("optimize", strconv.Quote(p.Optimize))
	}
	if p.Residency != "" {
		field("residency", strconv.Quote(p.Residency))
	}
	if p.SLAMS > 0 {
		field("sla_ms", strconv.Itoa(p.SLAMS))
	}
	b.WriteByte('}')
	return b.String()
}
