package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// Decision is data.stellwerk.decision, checked (docs/policy.md).
type Decision struct {
	Deny         []string          `json:"deny"`
	Exclude      map[string]string `json:"exclude"`
	Objective    string            `json:"objective"`
	QualityFloor float64           `json:"quality_floor"`
	MaxCostEUR   *float64          `json:"max_cost_eur"`
	Redact       []string          `json:"redact"`
	LogLevel     string            `json:"log_level"`
	Tags         map[string]string `json:"tags"`
	// Residency is the residency requirement that excluded models ("eu",
	// "on_prem"), "" when none did. Optional in the decision document: the
	// explanation names it ("eu residency + …") without reading reasons.
	Residency string `json:"residency,omitempty"`
	// Downgrade names the budgets (sorted) whose downgrade restricts this
	// request to cheaper models, nil when none does. Optional in the
	// decision document: the explanation names them ("downgrade (budget
	// team-day) + …").
	Downgrade []string `json:"downgrade,omitempty"`
}

var (
	objectives   = []string{"cost", "latency", "accuracy", "balanced"}
	logLevels    = []string{"", "debug", "info", "warn"}
	decisionKeys = []string{"deny", "exclude", "objective", "quality_floor", "max_cost_eur", "redact", "log_level", "tags"}
	// optionalKeys may be left out of a decision.
	optionalKeys = []string{"residency", "downgrade", "malformed_excluded"}
	residencies  = []string{"", "any", "eu", "on_prem"}
)

// NoReason is the reason of an exclusion whose rule gave an empty one.
const NoReason = "excluded by a policy rule that gave no reason"

// NoDenyReason is the reason of a denial whose rule gave an empty one.
const NoDenyReason = "a policy rule that gave no reason"

// ShapeError says what is wrong with a decision.
type ShapeError struct{ Problem string }

func (e *ShapeError) Error() string { return "data.stellwerk.decision: " + e.Problem }

// decode checks a decision value as OPA returns it (maps, slices,
// json.Number) and converts it.
func decode(v any) (Decision, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Decision{}, &ShapeError{fmt.Sprintf("must be an object, got %T", v)}
	}
	for k := range obj {
		if !slices.Contains(decisionKeys, k) && !slices.Contains(optionalKeys, k) {
			return Decision{}, &ShapeError{fmt.Sprintf("unknown key %q (allowed: %v, optional %v)", k, decisionKeys, optionalKeys)}
		}
	}
	for _, k := range decisionKeys {
		if _, ok := obj[k]; !ok {
			return Decision{}, &ShapeError{fmt.Sprintf("missing key %q", k)}
		}
	}
	var d Decision
	var err error
	if d.Deny, err = stringList(obj["deny"], "deny"); err != nil {
		return d, err
	}
	for i, reason := range d.Deny {
		if reason == "" {
			d.Deny[i] = NoDenyReason // the client read "denied by policy: " (the policy-author probe)
		}
	}
	sort.Strings(d.Deny)
	d.Deny = slices.Compact(d.Deny)
	if d.Redact, err = stringList(obj["redact"], "redact"); err != nil {
		return d, err
	}
	if d.Exclude, err = stringMap(obj["exclude"], "exclude"); err != nil {
		return d, err
	}
	for id, reason := range d.Exclude {
		if reason == "" {
			// An exclusion is one whatever its reason: an empty one had
			// left the model eligible (a helper's finding).
			d.Exclude[id] = NoReason
		}
	}
	if v, present := obj["malformed_excluded"]; present {
		if bad, ok := v.([]any); !ok || len(bad) > 0 {
			b, _ := json.Marshal(v)
			return d, &ShapeError{fmt.Sprintf("excluded must hold [model id, reason] pairs of two strings; these are not: %s", b)}
		}
	}
	if d.Tags, err = stringMap(obj["tags"], "tags"); err != nil {
		return d, err
	}
	if s, ok := obj["objective"].(string); !ok || !slices.Contains(objectives, s) {
		return d, &ShapeError{fmt.Sprintf("objective must be one of %v, got %v", objectives, obj["objective"])}
	} else {
		d.Objective = s
	}
	if s, ok := obj["log_level"].(string); !ok || !slices.Contains(logLevels, s) {
		return d, &ShapeError{fmt.Sprintf("log_level must be one of %q, got %v", logLevels, obj["log_level"])}
	} else {
		d.LogLevel = s
	}
	if r, present := obj["residency"]; present {
		if s, ok := r.(string); !ok || !slices.Contains(residencies, s) {
			return d, &ShapeError{fmt.Sprintf("residency must be one of %q, got %v", residencies, r)}
		} else if s != "any" {
			d.Residency = s
		}
	}
	if v, present := obj["downgrade"]; present {
		if d.Downgrade, err = stringList(v, "downgrade"); err != nil {
			return d, err
		}
		if len(d.Downgrade) == 0 {
			d.Downgrade = nil
		}
		sort.Strings(d.Downgrade)
	}
	q, ok := number(obj["quality_floor"])
	if !ok || q < 0 || q > 1 {
		return d, &ShapeError{fmt.Sprintf("quality_floor must be a number in [0, 1], got %v", obj["quality_floor"])}
	}
	d.QualityFloor = q
	if obj["max_cost_eur"] != nil {
		c, ok := number(obj["max_cost_eur"])
		if !ok || c < 0 {
			return d, &ShapeError{fmt.Sprintf("max_cost_eur must be null or a number >= 0, got %v", obj["max_cost_eur"])}
		}
		d.MaxCostEUR = &c
	}
	return d, nil
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	case int:
		return float64(n), true
	}
	return 0, false
}

func stringList(v any, key string) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, &ShapeError{fmt.Sprintf("%s must be an array or set of strings, got %T", key, v)}
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, &ShapeError{fmt.Sprintf("%s must contain strings only, got %v", key, e)}
		}
		out = append(out, s)
	}
	return out, nil
}

func stringMap(v any, key string) (map[string]string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &ShapeError{fmt.Sprintf("%s must be an object of strings, got %T", key, v)}
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		s, ok := e.(string)
		if !ok {
			return nil, &ShapeError{fmt.Sprintf("%s[%q] must be a string, got %v", key, k, e)}
		}
		out[k] = s
	}
	return out, nil
}
