package classify

import (
	"errors"
	"fmt"
	"slices"

	"github.com/stellwerk/stellwerk/internal/config"
)

// Sensitivity levels, lowest first.
var SensitivityLevels = []string{"public", "internal", "confidential", "restricted"}

// Risk levels, lowest first.
var RiskLevels = []string{Low, Medium, High}

// Rules derive sensitivity and risk from findings. Compiled once per config.
type Rules struct {
	sensitivity []rule
	risk        []rule
}

type rule struct {
	name      string
	level     int
	secrets   bool
	pii       uint64 // bit per PII type; allPII for "any"
	injDet    bool
	injScore  float64
	tasks     []string
	tokens    int
	minSens   int // -1 when unset
	truncated bool
}

const allPII = ^uint64(0)

// CompileRules validates rule config against the known type and task names
// and reports every problem at once, each naming its field.
func CompileRules(c config.Classify, piiTypes, tasks []string) (*Rules, error) {
	var errs []error
	compile := func(field string, in []config.ClassRule, levels []string, allowSens bool) []rule {
		out := make([]rule, 0, len(in))
		for i, r := range in {
			f := fmt.Sprintf("classify.%s[%d]", field, i)
			cr := rule{name: r.Name, minSens: -1, secrets: r.If.Secrets, injDet: r.If.InjectionDetected,
				injScore: r.If.InjectionScoreAtLeast, tasks: r.If.Tasks, tokens: r.If.InputTokensAtLeast,
				truncated: r.If.ScanTruncated}
			if r.Name == "" {
				errs = append(errs, fmt.Errorf("%s.name: required (it explains the level)", f))
			}
			if cr.level = slices.Index(levels, r.Level); cr.level < 0 {
				errs = append(errs, fmt.Errorf("%s.level: %q is not one of %v", f, r.Level, levels))
			}
			for j, p := range r.If.PII {
				if p == "any" {
					cr.pii = allPII
					continue
				}
				k := slices.Index(piiTypes, p)
				if k < 0 || k >= 63 {
					errs = append(errs, fmt.Errorf("%s.if.pii[%d]: unknown type %q (known: %v)", f, j, p, piiTypes))
					continue
				}
				cr.pii |= 1 << k
			}
			for j, t := range r.If.Tasks {
				if !slices.Contains(tasks, t) {
					errs = append(errs, fmt.Errorf("%s.if.tasks[%d]: unknown task %q (known: %v)", f, j, t, tasks))
				}
			}
			if s := r.If.InjectionScoreAtLeast; s < 0 || s > 1 {
				errs = append(errs, fmt.Errorf("%s.if.injection_score_at_least: must be within 0..1", f))
			}
			if r.If.SensitivityAtLeast != "" {
				if !allowSens {
					errs = append(errs, fmt.Errorf("%s.if.sensitivity_at_least: only risk rules can use it", f))
				} else if cr.minSens = slices.Index(SensitivityLevels, r.If.SensitivityAtLeast); cr.minSens < 0 {
					errs = append(errs, fmt.Errorf("%s.if.sensitivity_at_least: %q is not one of %v", f, r.If.SensitivityAtLeast, SensitivityLevels))
				}
			}
			out = append(out, cr)
		}
		return out
	}
	rs := &Rules{
		sensitivity: compile("sensitivity", c.Sensitivity, SensitivityLevels, false),
		risk:        compile("risk", c.Risk, RiskLevels, true),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rs, nil
}

// facts is what rules are evaluated on.
type facts struct {
	secrets     bool
	pii         uint64
	injDetected bool
	injScore    float64
	task        string
	tokens      int
	sensitivity int
	truncated   bool // the scan stopped at a cap
}

func (r *rule) holds(f *facts) bool {
	switch {
	case r.secrets && !f.secrets,
		r.pii != 0 && r.pii&f.pii == 0,
		r.injDet && !f.injDetected,
		r.injScore > 0 && f.injScore < r.injScore,
		len(r.tasks) > 0 && !slices.Contains(r.tasks, f.task),
		r.tokens > 0 && f.tokens < r.tokens,
		r.minSens >= 0 && f.sensitivity < r.minSens,
		r.truncated && !f.truncated:
		return false
	}
	return true
}

// first returns the level index and rule name of the first rule that holds,
// or 0 and "default".
func first(rules []rule, f *facts) (int, string) {
	for i := range rules {
		if rules[i].holds(f) {
			return rules[i].level, rules[i].name
		}
	}
	return 0, "default"
}
