package extproc

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/ledger"
)

// policyBudgets reads the principal's budgets for the policy input, before
// the request is routed, when a downgrade budget applies to it: the policy
// restricts such a request to cheaper models once the budget is in force.
// A store key's own budgets count (Request.Extra), as they do at Reserve.
// Block budgets alone are not read: the reservation enforces them, and
// reading costs a round trip to Redis. When the store cannot say, the
// request is routed without budget state and Reserve applies the failure
// mode.
func (p *edge) policyBudgets() []ledger.BudgetState {
	led := p.state.Ledger
	if led == nil {
		return nil
	}
	pr := &p.principal
	extra, _ := p.state.limitsOf(pr, led) // a record that does not compile is refused at the reservation
	req := ledger.Request{Subject: ledger.Subject{Key: pr.KeyID, User: pr.User, Team: pr.Team, Workspace: pr.Workspace},
		Extra: extra}
	if !led.Downgrades(&req) {
		return nil
	}
	return p.peek(led, &req)
}

// peekBudgets reads the budget state for a route that reads budgets
// (budget_limit nodes), whatever their action.
func (p *edge) peekBudgets(context.Context) []ledger.BudgetState {
	led := p.state.Ledger
	if led == nil {
		return nil
	}
	pr := &p.principal
	extra, _ := p.state.limitsOf(pr, led) // refused at the reservation when it does not compile
	req := ledger.Request{Subject: ledger.Subject{Key: pr.KeyID, User: pr.User, Team: pr.Team, Workspace: pr.Workspace},
		Extra: extra}
	return p.peek(led, &req)
}

// peek reads the ledger's state; nil when it cannot.
func (p *edge) peek(led *ledger.Ledger, req *ledger.Request) []ledger.BudgetState {
	st, err := led.Peek(p.ctx, req)
	if err != nil {
		if p.ctx.Err() != nil {
			return nil // the client is gone; the reservation will say so
		}
		lvl := zap.WarnLevel
		if !errors.Is(err, ledger.ErrUnavailable) {
			lvl = zap.ErrorLevel
		}
		p.log.Log(lvl, "budget state for the policy cannot be read; routed without it", zap.String("decision_id", p.id), zap.Error(err))
		return nil
	}
	return st.Budgets
}
