package flow

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/request"
)

// fastLimiter counts without a lock, as the edge's in-memory ledger
// answer costs next to nothing beside the flow itself.
type fastLimiter struct{ n atomic.Int64 }

func (l *fastLimiter) Take(_ context.Context, r *RateLimit, _ *Input) (Verdict, error) {
	if l.n.Add(1)%200 >= r.RequestsPerMinute {
		return Over, nil
	}
	return Under, nil
}

// benchInput is a production-shaped request: a principal, a classified
// prompt, headers, metadata and budget state present.
func benchInput(plan string) *Input {
	return &Input{
		RequestID: "dec-0001",
		Now:       time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
		Chat:      &request.Chat{Model: "route:support", MaxTokens: 512, Messages: 4, User: "u-42"},
		Principal: &auth.Principal{Authenticated: true, KeyID: "support-bot", Workspace: "support", Team: "tier1", User: "ana@example.com"},
		Class:     &classify.Result{Task: "chat", Complexity: "low", Risk: "low", Sensitivity: "internal", Language: "en", InputTokens: 380},
		Headers:   map[string]string{"user-agent": "OpenAI/Python 1.99", "x-request-id": "abc"},
		Metadata:  map[string]string{"plan": plan, "org": "acme", "userId": "u-42"},
		Budgets:   []ledger.BudgetState{{Name: "support-month", Ratio: 0.41}, {Name: "eng-day", Ratio: 0.1}},
		Limiter:   &fastLimiter{},
	}
}

// BenchmarkEvaluate is the route of docs/routes.md: a condition on
// metadata.plan, a budget limit, a sticky 10/90 split (paid), or a rate
// limit with a fallback (free).
func BenchmarkEvaluate(b *testing.B) {
	f := loadFile(b, "testdata/support.yaml")
	for _, plan := range []string{"paid", "free"} {
		b.Run(plan, func(b *testing.B) {
			in := benchInput(plan)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				in.RequestID = strconv.Itoa(i & 1023)
				o := f.Evaluate(ctx, in)
				if len(o.Targets) == 0 && o.End == nil {
					b.Fatal("no outcome")
				}
			}
		})
	}
}

// BenchmarkLoad is what compiling the example costs (per version, once).
func BenchmarkLoad(b *testing.B) {
	data := []byte(mustRead(b, "testdata/support.yaml"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load("support.yaml", data, testEnv); err != nil {
			b.Fatal(err)
		}
	}
}
