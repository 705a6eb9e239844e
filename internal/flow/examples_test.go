package flow

import (
	"context"
	"testing"
)

// The docs' examples load and run.
func TestDocExamples(t *testing.T) {
	for _, expr := range []string{
		`metadata.?plan.orValue("") == "paid"`,
		`principal.team == "tier1" && classification.complexity == "high"`,
		`classification.pii || classification.sensitivity in ["confidential", "restricted"]`,
		`request.tools && request.max_tokens > 2000`,
		`budgets["support-month"].ratio >= 0.8`,
		`now.getHours("Europe/Berlin") >= 18`,
	} {
		src := "route: d\nnodes:\n  - {id: c, if: '" + expr + "', then: a, else: a}\n  - {id: a, model: gpt-4o}\n"
		f, err := Load("doc", []byte(src), testEnv)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if o := f.Evaluate(context.Background(), benchInput("paid")); len(o.ConditionErrors) > 0 {
			t.Errorf("%s: %v", expr, o.ConditionErrors)
		}
	}
}
