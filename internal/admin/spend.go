package admin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
)

// SpendService is what GET /admin/spend needs of the server: the spend
// ledger and the config in force (its budgets.timezone is the default
// time zone of days).
type SpendService interface {
	Spend() *spend.Store
	Config() *config.Config
}

// spendQueryTimeout bounds one report's query (storeGate.bound sets it:
// a report sums many rows, more than storeTimeout's few).
const spendQueryTimeout = 30 * time.Second

func registerSpend(guarded func(string, []string, http.HandlerFunc), ss SpendService, log *zap.Logger) {
	h := &spendAPI{ss: ss, log: log}
	guarded("GET /admin/spend", readers, h.report)
}

type spendAPI struct {
	ss  SpendService
	log *zap.Logger
}

// SpendParams reads a report's parameters from a query string: since,
// until, group_by, tz, format (json or csv), and one filter per dimension
// (key, user, team, workspace, route, model, provider, status). An unknown
// or repeated parameter is an error, never ignored.
func SpendParams(q url.Values) (spend.Params, string, error) {
	var p spend.Params
	var format string
	var errs []error
	for k, vs := range q {
		if len(vs) != 1 {
			errs = append(errs, &spend.InvalidError{Field: k, Msg: "given more than once"})
			continue
		}
		v := vs[0]
		switch k {
		case "since":
			p.Since = v
		case "until":
			p.Until = v
		case "group_by":
			p.GroupBy = v
		case "tz":
			p.TimeZone = v
		case "format":
			if v != "json" && v != "csv" {
				errs = append(errs, &spend.InvalidError{Field: k, Msg: "must be json or csv"})
			}
			format = v
		default:
			if !slices.Contains(spend.FilterDims, spend.Dim(k)) {
				errs = append(errs, &spend.InvalidError{Field: k, Msg: "unknown parameter; use since, until, group_by, tz, format, " +
					"or a filter: key, user, team, workspace, route, model, provider, status, end_user, tag"})
				continue
			}
			if p.Filter == nil {
				p.Filter = map[spend.Dim]string{}
			}
			p.Filter[spend.Dim(k)] = v
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return p, format, errors.Join(errs...)
}

// sortedJoin joins the errors of several errors.Join results, in the
// order of their messages; nil when there are none.
func sortedJoin(errs ...error) error {
	var all []error
	for _, err := range errs {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			all = append(all, j.Unwrap()...)
		} else if err != nil {
			all = append(all, err)
		}
	}
	slices.SortFunc(all, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(all...)
}

// wantsCSV: the first of text/csv and application/json the Accept header
// names wins; JSON when it names neither.
func wantsCSV(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "text/csv":
			return true
		case "application/json":
			return false
		}
	}
	return false
}

func (h *spendAPI) report(w http.ResponseWriter, r *http.Request) {
	s := h.ss.Spend()
	if s == nil {
		writeError(w, apierr.Unavailable("spend_store_unavailable", "this server keeps no spend ledger"))
		return
	}
	p, format, perr := SpendParams(r.URL.Query())
	// The values are checked even when a parameter is unknown: every
	// problem is reported at once (docs/budgets.md).
	q, err := p.Resolve(time.Now(), h.ss.Config().Budgets.TimeZone)
	if err = sortedJoin(perr, err); err != nil {
		writeError(w, SpendQueryError(err))
		return
	}
	rep, err := s.Query(r.Context(), q)
	if err != nil {
		e := SpendError(err)
		if apierr.ServerSide(e) {
			h.log.Warn("spend report failed", zap.Int("status", apierr.HTTPStatus(e)), zap.Error(err))
		}
		writeError(w, e)
		return
	}
	if format == "csv" || format == "" && wantsCSV(r.Header.Get("Accept")) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="stellwerk-spend.csv"`)
		w.WriteHeader(http.StatusOK)
		if err := rep.WriteCSV(w); err != nil {
			h.log.Info("spend report: writing CSV failed", zap.Error(err))
		}
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// SpendQueryError is the 400 for bad report parameters: every problem in
// the message, the first one's parameter in param.
func SpendQueryError(err error) *apierr.Error {
	var inv *spend.InvalidError
	if !errors.As(err, &inv) {
		return apierr.Internal()
	}
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	return apierr.Invalid("invalid_spend_query", inv.Field, "%s", msg)
}

// SpendError maps a spend ledger error to the answer a caller sees; a
// database message never reaches the caller.
func SpendError(err error) *apierr.Error {
	var inv *spend.InvalidError
	switch {
	case errors.As(err, &inv):
		return SpendQueryError(err)
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		e := apierr.Unavailable("spend_store_unavailable", "the spend ledger's store is unavailable; try again")
		e.RetryAfter = 1
		return e
	}
	return apierr.Internal()
}
