package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/policy"
	"github.com/stellwerk/stellwerk/internal/qpredict"
	"github.com/stellwerk/stellwerk/internal/store"
)

const replayUsage = `usage:
  stellwerk replay DECISION_ID [--with-current] [--json]
      decide a recorded request again with the policy, config and catalog versions it was
      decided with, and show that the explanation is the same; --with-current also decides
      it with today's, and shows the difference
  stellwerk replay --from T --to T [--against CONFIG] [--workspace W] [--json]
      what the policy and config of --config would decide differently over a period:
      impact analysis before deploying a change; without --against, compared with what
      was recorded (which counts every change made in the period too), with --against,
      with what CONFIG (the config in force) decides of the same records today
flags: --config FILE, --state-dir DIR (as for serve)
`

// explanation is a decision as replay compares it: what was chosen and
// why, the failover order, every candidate's verdict and what it weighed,
// what the policy decided, the route's path, or the decision's error. Built
// the same way from a record and from a replay, and compared as JSON bytes.
type replayExplanation struct {
	Chosen       string            `json:"chosen,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	Fallbacks    []string          `json:"fallbacks,omitempty"`
	Error        string            `json:"error,omitempty"`
	Objective    string            `json:"objective,omitempty"`
	QualityFloor float64           `json:"quality_floor,omitempty"`
	Constraint   string            `json:"constraint,omitempty"`
	Deny         []string          `json:"deny,omitempty"`
	Route        string            `json:"route,omitempty"`
	Candidates   []audit.Candidate `json:"candidates,omitempty"`
}

// fromRecord is the recorded decision. A record with a chosen model was
// decided (what came after — budgets, providers — is not the decision's);
// one without was refused by the decision, with its error code.
func fromRecord(r *audit.Record) replayExplanation {
	e := replayExplanation{Chosen: r.Chosen, Reason: r.Reason, Fallbacks: r.Fallbacks, Objective: r.Objective,
		QualityFloor: r.QualityFloor, Constraint: r.Constraint, Deny: r.Deny, Candidates: asRecorded(r.Candidates)}
	if r.Chosen == "" {
		e.Error = r.ErrorCode
	}
	if r.Route != nil {
		e.Route = routeLine(r.Route.Name, r.Route.Version, r.Route.Path, r.Route.Arm)
	}
	return e
}

// fromReplay is a replay's decision, as the edge would have recorded it:
// the failover order is the attempt plan when the config fails over.
func fromReplay(res *decision.Result, err error, cfg *config.Config) replayExplanation {
	e := replayExplanation{}
	if res == nil {
		e.Error = apierr.As(err).Code
		return e
	}
	if res.PolicyVersion != "" {
		e.Objective, e.QualityFloor, e.Constraint, e.Deny = res.Policy.Objective, res.Policy.QualityFloor, res.Constraint, res.Policy.Deny
	}
	if o := res.Route; o != nil {
		e.Route = routeLine(o.Route, o.Version, o.Path, o.Arm)
	}
	for _, v := range res.Selection.Table() {
		e.Candidates = append(e.Candidates, audit.Candidate{Model: v.ID, Provider: v.Provider, Verdict: v.Verdict, Reason: v.Reason, Rank: v.Rank, Score: v.Score,
			EstimatedCostEUR: v.EstimatedCostEUR, Quality: v.Quality, LatencyMS: v.LatencyMS, Residency: v.Residency})
	}
	e.Candidates = asRecorded(e.Candidates)
	if err != nil {
		e.Error = apierr.As(err).Code
		return e
	}
	d := &res.Selection
	e.Chosen, e.Reason = d.Model.ID, d.Reason
	fbs := d.Fallbacks
	if cfg.Envoy.Mode == config.ModeStandalone {
		fbs = d.Plan(cfg.Failover.MaxAttempts)[1:]
	}
	for _, m := range fbs {
		e.Fallbacks = append(e.Fallbacks, m.ID)
	}
	return e
}

// asRecorded is candidate lines with their amounts as a record keeps them
// (audit.Money): a record written since amounts are rounded holds the
// rounded cost, one written before the float itself, a replay the float
// again; compared this way, each side reads the same. A copy: the
// record's own lines are not changed.
func asRecorded(cs []audit.Candidate) []audit.Candidate {
	if cs == nil {
		return nil
	}
	out := make([]audit.Candidate, len(cs))
	for i, c := range cs {
		c.EstimatedCostEUR = audit.Money(c.EstimatedCostEUR)
		out[i] = c
	}
	return out
}

func routeLine(name string, version int64, path []string, arm string) string {
	s := fmt.Sprintf("%s@%d: %s", name, version, strings.Join(path, " → "))
	if arm != "" {
		s += " [" + arm + "]"
	}
	return s
}

// replayer builds routers for the versions records name (each once) and
// for today's config.
type replayer struct {
	ctx     context.Context
	st      *audit.Store
	routes  *flowstore.Store
	cfgPath string
	kept    map[audit.Versions]*keptRouter
	current *keptRouter
	// againstPath is --against: the config a period's what-if compares
	// the candidate (cfgPath) with, decided today as the candidate is;
	// "" compares with the records.
	againstPath string
	against     *keptRouter
}

type keptRouter struct {
	cfg *config.Config
	r   *decision.Router
	err error
}

// fixedPolicy serves one policy version.
type fixedPolicy struct{ e *policy.Engine }

func (f fixedPolicy) Current() *policy.Engine { return f.e }

// recorded is the router of the versions a record names.
func (rp *replayer) recorded(v audit.Versions) *keptRouter {
	if k, ok := rp.kept[v]; ok {
		return k
	}
	k := &keptRouter{}
	rp.kept[v] = k
	body := func(kind, hash string) []byte {
		if k.err != nil {
			return nil
		}
		if hash == "" {
			k.err = fmt.Errorf("the record names no %s version", kind)
			if kind == "policy" {
				k.err = fmt.Errorf("the record names no policy version: the request was refused before the policy ran")
			}
			return nil
		}
		_, b, err := rp.st.Version(rp.ctx, hash)
		if err != nil {
			k.err = err
			return nil
		}
		if strings.HasPrefix(hash, "sha256:") && audit.ContentHash(b) != hash {
			k.err = fmt.Errorf("kept version %s does not hash to its name: the store was changed", hash)
		}
		return b
	}
	cfgYAML, catYAML, bundle := body("config", v.Config), body("catalog", v.Catalog), body("policy", v.Policy)
	if k.err != nil {
		return k
	}
	if k.cfg, k.err = config.DecodeKept(cfgYAML, catYAML); k.err != nil {
		return k
	}
	eng, err := policy.LoadBundle(rp.ctx, bundle)
	if err != nil {
		k.err = err
		return k
	}
	if v.PolicySHA256 != "" && eng.Digest != v.PolicySHA256 {
		k.err = fmt.Errorf("kept policy version %s does not hash to the record's policy_sha256 (its sources are %s): the store was changed", v.Policy, eng.Digest)
		return k
	}
	k.r, k.err = rp.router(k.cfg, fixedPolicy{eng})
	return k
}

// today is the router of the config file and its policy as they are now.
func (rp *replayer) today() *keptRouter {
	if rp.current == nil {
		rp.current = rp.live(rp.cfgPath)
	}
	return rp.current
}

// base is the router of --against's config file as it is now.
func (rp *replayer) base() *keptRouter {
	if rp.against == nil {
		rp.against = rp.live(rp.againstPath)
	}
	return rp.against
}

// live is the router of a config file and its policy as they are now.
func (rp *replayer) live(path string) *keptRouter {
	k := &keptRouter{}
	if k.cfg, k.err = config.Load(path); k.err != nil {
		return k
	}
	pm, err := policy.NewManager(rp.ctx, policy.Source{Library: *k.cfg.Policy.Library, Dir: k.cfg.Policy.Dir, RequireDir: k.cfg.Policy.RequireDirModules}, zap.NewNop())
	if err != nil {
		k.err = fmt.Errorf("policy: %w", err)
		return k
	}
	k.r, k.err = rp.router(k.cfg, pm)
	return k
}

func (rp *replayer) router(cfg *config.Config, ps decision.PolicySource) (*decision.Router, error) {
	// Credentials are as recorded (decision.Inputs.NoCredential): none is read.
	cat, err := catalog.New(cfg, catalog.Env{Getenv: func(string) string { return "" }, ReadFile: func(string) ([]byte, error) { return nil, os.ErrNotExist }})
	if err != nil {
		return nil, err
	}
	cl, err := classify.New(cfg.Classify)
	if err != nil {
		return nil, err
	}
	r := decision.New(cfg, cat, cl, ps, nil)
	// The quality predictor is the file as it is now: the audit record does not keep it
	// (docs/routerbench.md), so a retrained one can change a replayed decision.
	if path := cfg.Routing.QualityPredictor; path != "" {
		if r.Predictor, err = qpredict.ReadFile(path); err != nil {
			return nil, fmt.Errorf("routing.quality_predictor: %w", err)
		}
	}
	t := flowstore.NewTable(rp.routes, flow.EnvFor(cfg, cat), nil)
	if err := t.Refresh(rp.ctx); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	r.Routes = t
	return r, nil
}

// replayOutcome is what became of the recorded request, as the record
// says: facts a replay does not decide again, shown beside it so that a
// decision that was refused, failed over or cut reads as such (the audit
// probe read only "recorded us-small … identical" for a budget refusal).
type replayOutcome struct {
	Status    int     `json:"status,omitempty"`
	ErrorCode string  `json:"error_code,omitempty"`
	Served    string  `json:"served,omitempty"`
	Attempts  int     `json:"attempts,omitempty"`
	CostEUR   float64 `json:"cost_eur,omitempty"`
}

// replayed is one record decided again.
type replayed struct {
	ID       string            `json:"id"`
	Time     time.Time         `json:"time"`
	Versions audit.Versions    `json:"versions"`
	Outcome  replayOutcome     `json:"outcome"`
	Recorded replayExplanation `json:"recorded"`
	Replayed replayExplanation `json:"replayed"`
	// Identical: the replay's explanation is byte for byte the recorded one.
	Identical bool `json:"identical"`
	// Current is today's decision (--with-current, or a period).
	Current        *replayExplanation `json:"current,omitempty"`
	CurrentChanged bool               `json:"current_changed,omitempty"`
	// Against is the decision of a period's --against config.
	Against *replayExplanation `json:"against,omitempty"`
	// RedactedRead are the input values (input.request.user, …) that the
	// record's policy reads and the record keeps redacted: the replay
	// decided on the placeholder ([EMAIL]), so it can differ from the record
	// without anything having changed. CurrentRedactedRead are those today's
	// policy (and --against's) reads.
	RedactedRead        []string `json:"redacted_read,omitempty"`
	CurrentRedactedRead []string `json:"current_redacted_read,omitempty"`
	// NotReplayable says why the record cannot be decided again.
	NotReplayable string `json:"not_replayable,omitempty"`
}

// latencies reads the learned latencies back from the record's candidate
// table when its inputs left them there (decision.Inputs.LatencyFrom): a
// model's is learned when it is not its seed in the catalog the record
// names or, when that catalog cannot be loaded (a replay with today's
// versions only), in today's.
func (rp *replayer) latencies(in *decision.Inputs, r *audit.Record) error {
	if in.LatencyFrom == "" {
		return nil
	}
	k := rp.recorded(r.Versions)
	if k.err != nil || k.r == nil {
		k = rp.today()
	}
	seed := func(string) (int, bool) { return 0, false }
	if k.err == nil && k.r != nil {
		seed = func(id string) (int, bool) {
			m, ok := k.r.Catalog.Lookup(id)
			if !ok {
				return 0, false
			}
			return m.LatencyMS, true
		}
	}
	ids, ms := make([]string, len(r.Candidates)), make([]int, len(r.Candidates))
	for i := range r.Candidates {
		ids[i], ms[i] = r.Candidates[i].Model, r.Candidates[i].LatencyMS
	}
	return in.LatencyFromTable(ids, ms, seed)
}

// replayRecord decides one record again: with its versions unless only
// today's are asked for, and with today's when current.
func (rp *replayer) replayRecord(e *audit.Entry, recorded, current bool) (out replayed) {
	out = replayed{ID: e.ID, Time: e.Time}
	var r struct {
		audit.Record
		Replay json.RawMessage `json:"replay"`
	}
	if err := json.Unmarshal(e.Body, &r); err != nil {
		out.NotReplayable = "the record does not decode: " + err.Error()
		return out
	}
	out.Versions, out.Recorded = r.Versions, fromRecord(&r.Record)
	out.Outcome = replayOutcome{Status: r.Status, ErrorCode: r.ErrorCode, Served: servedBy(&r.Record), Attempts: len(r.Attempts)}
	if r.Cost != nil {
		out.Outcome.CostEUR = r.Cost.EUR
	}
	if len(r.Replay) == 0 {
		out.NotReplayable = "the request was refused before it was classified (" + r.ErrorCode + "): there is no decision to replay"
		if r.Status == 0 && r.ErrorCode == "" {
			out.NotReplayable = "the record keeps no replay inputs"
		}
		return out
	}
	var in decision.Inputs
	if err := json.Unmarshal(r.Replay, &in); err != nil {
		out.NotReplayable = "the replay inputs do not decode: " + err.Error()
		return out
	}
	if err := rp.latencies(&in, &r.Record); err != nil {
		out.NotReplayable = err.Error()
		return out
	}
	var recEngines, curEngines []*policy.Engine
	defer func() {
		out.RedactedRead, out.CurrentRedactedRead = redactedReads(&in, recEngines), redactedReads(&in, curEngines)
	}()
	if recorded {
		// When its versions cannot be loaded, today's decision is still
		// shown beside the record (the what-if's examples are chosen by it).
		if k := rp.recorded(r.Versions); k.err != nil {
			out.NotReplayable = "the versions it names cannot be loaded: " + k.err.Error()
			if !current {
				return out
			}
		} else {
			recEngines = append(recEngines, k.r.Policy.Current())
			res, err := k.r.Replay(rp.ctx, &in, false)
			out.Replayed = fromReplay(res, err, k.cfg)
			a, _ := json.Marshal(out.Recorded)
			b, _ := json.Marshal(out.Replayed)
			out.Identical = bytes.Equal(a, b)
		}
	}
	if current {
		k := rp.today()
		if k.err != nil {
			out.NotReplayable = "today's config does not load: " + k.err.Error()
			return out
		}
		curEngines = append(curEngines, k.r.Policy.Current())
		res, err := k.r.Replay(rp.ctx, &in, true)
		cur := fromReplay(res, err, k.cfg)
		out.Current = &cur
		out.CurrentChanged = decidedDifferently(&out.Recorded, &cur)
		if rp.againstPath != "" {
			k := rp.base()
			if k.err != nil {
				out.NotReplayable = "--against's config does not load: " + k.err.Error()
				return out
			}
			curEngines = append(curEngines, k.r.Policy.Current())
			res, err := k.r.Replay(rp.ctx, &in, true)
			base := fromReplay(res, err, k.cfg)
			out.Against = &base
		}
	}
	return out
}

// decidedDifferently: another model, or refused otherwise (or at all).
func decidedDifferently(a, b *replayExplanation) bool {
	return a.Chosen != b.Chosen || a.Error != b.Error
}

// redactedReads are the values of in that the audit record keeps redacted
// (decision.Inputs: the user, metadata values and names, headers; the
// classifier's findings replaced by their placeholders) and that one of
// the policies reads, as input paths, sorted.
func redactedReads(in *decision.Inputs, engines []*policy.Engine) []string {
	var out []string
	check := func(shown string, path ...string) {
		for _, e := range engines {
			if e != nil && e.Reads(path...) {
				out = append(out, shown)
				return
			}
		}
	}
	if classify.HasPlaceholder(in.User) {
		check("input.request.user", "request", "user")
	}
	for k, v := range in.Metadata {
		if classify.HasPlaceholder(k) || classify.HasPlaceholder(v) {
			check("input.request.metadata."+k, "request", "metadata", k)
		}
	}
	for k, v := range in.Headers {
		if classify.HasPlaceholder(v) {
			check("input.request.headers."+k, "request", "headers", k)
		}
	}
	sort.Strings(out)
	return out
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath(), "config file (env STELLWERK_CONFIG)")
	stateDir := fs.String("state-dir", "", "directory of the embedded store, overrides state.dir (as for serve)")
	withCurrent := fs.Bool("with-current", false, "also decide with today's policy and config, and show the difference")
	from := fs.String("from", "", "what-if over the records from this time (RFC 3339 or date)")
	to := fs.String("to", "", "… to this time")
	workspace := fs.String("workspace", "", "only this workspace's records (with --from/--to)")
	against := fs.String("against", "", "with --from/--to: compare with what this config (the one in force) decides today, not with the records")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseAnywhere(fs, args)
	if err != nil {
		fmt.Fprint(stderr, replayUsage)
		return ErrUsage
	}
	if problems := replayFlagProblems(pos, *from, *to, *workspace, *against, *withCurrent); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "replay: "+p)
		}
		fmt.Fprint(stderr, replayUsage)
		return ErrUsage
	}
	period := *from != "" || *to != ""
	cfg, err := loadConfig(*cfgPath, *stateDir)
	if err != nil {
		return err
	}
	if err := storeExists(cfg.State); err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := audit.OpenStore(ctx, db)
	if err != nil {
		return err
	}
	fst, err := flowstore.Open(ctx, db)
	if err != nil {
		return err
	}
	rp := &replayer{ctx: ctx, st: st, routes: fst, cfgPath: *cfgPath, againstPath: *against, kept: map[audit.Versions]*keptRouter{}}
	if period {
		fromT, err1 := parseWhen(*from)
		toT, err2 := parseWhen(*to)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		return rp.period(audit.Filter{From: fromT, To: toT, Workspace: *workspace, Kind: audit.KindDecision}, *asJSON, stdout)
	}
	es, _, err := st.Query(ctx, audit.Filter{ID: pos[0], Kind: audit.KindDecision}, nil, 2)
	if err != nil {
		return err
	}
	if len(es) == 0 {
		return fmt.Errorf("no decision %s in the audit log", pos[0])
	}
	if es[0].Body == nil {
		return fmt.Errorf("decision %s was removed by retention", pos[0])
	}
	out := rp.replayRecord(&es[0], true, *withCurrent)
	if *asJSON {
		if err := writeJSONTo(stdout, out); err != nil {
			return err
		}
	} else {
		printReplay(stdout, &out)
	}
	switch {
	case out.NotReplayable != "":
		return fmt.Errorf("decision %s cannot be replayed: %s", out.ID, out.NotReplayable)
	case !out.Identical:
		return fmt.Errorf("the replay of %s differs from the record", out.ID)
	}
	return nil
}

// replayFlagProblems are every problem with the flags at once, each naming
// the flag: a bare usage left the probe guessing that --from needs --to.
func replayFlagProblems(pos []string, from, to, workspace, against string, withCurrent bool) []string {
	var ps []string
	if from == "" && to == "" {
		switch {
		case len(pos) == 0:
			ps = append(ps, "name a decision id, or a period with --from and --to")
		case len(pos) > 1:
			ps = append(ps, fmt.Sprintf("one decision id at a time (%d given)", len(pos)))
		}
		if workspace != "" {
			ps = append(ps, "--workspace needs a period: --from and --to")
		}
		if against != "" {
			ps = append(ps, "--against needs a period: --from and --to")
		}
		return ps
	}
	if from == "" {
		ps = append(ps, "--to needs --from, the start of the period (a time, a date, or an age such as 1h)")
	}
	if to == "" {
		ps = append(ps, "--from needs --to, the end of the period (a time, a date, or now)")
	}
	if len(pos) != 0 {
		ps = append(ps, "a decision id or a period, not both")
	}
	if withCurrent {
		ps = append(ps, "--with-current is for one decision; a period is decided with --config's policy")
	}
	return ps
}

// servedBy is the model that served the record's request, "" for none. A
// record written before 2026-12-03 (6a6069c) named the last model tried
// after every attempt failed; its attempts say none served (the compliance
// probe read "503 no_eligible_model, served by …").
func servedBy(r *audit.Record) string {
	if r.Status/100 == 2 || len(r.Attempts) == 0 {
		return r.Served
	}
	for _, a := range r.Attempts {
		if a.Outcome == "served" {
			return r.Served
		}
	}
	return ""
}

// outcomeText is a record's outcome on one line: "200, served by m after
// 2 attempts, €0.000041", "429 budget_exceeded".
func outcomeText(o *replayOutcome) string {
	var b strings.Builder
	switch {
	case o.Status == 0:
		b.WriteString("no answer (the client left first)")
	default:
		b.WriteString(strconv.Itoa(o.Status))
	}
	if o.ErrorCode != "" && o.Status != 0 {
		b.WriteString(" " + shown(o.ErrorCode))
	}
	if o.Served != "" {
		b.WriteString(", served by " + shown(o.Served))
		if o.Attempts > 1 {
			fmt.Fprintf(&b, " after %d attempts", o.Attempts)
		}
	}
	if o.CostEUR != 0 {
		fmt.Fprintf(&b, ", €%.6f", o.CostEUR)
	}
	return b.String()
}

func printReplay(w io.Writer, o *replayed) {
	fmt.Fprintf(w, "decision    %s at %s\n", shown(o.ID), o.Time.Format(time.RFC3339))
	pol := o.Versions.Policy
	if pol == "" {
		pol = "none"
	}
	fmt.Fprintf(w, "versions    policy %s, config %s, catalog %s", pol, short(o.Versions.Config), short(o.Versions.Catalog))
	if o.Versions.Predictor != "" {
		// Not needed to replay (the record keeps the predictions), kept
		// to say which file made them.
		fmt.Fprintf(w, ", predictor %s", short(o.Versions.Predictor))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "outcome     "+outcomeText(&o.Outcome))
	if o.NotReplayable != "" {
		fmt.Fprintf(w, "not replayable: %s\n", shown(o.NotReplayable))
		if o.Current == nil {
			return
		}
		fmt.Fprintln(w, "recorded    "+summary(&o.Recorded))
	} else {
		fmt.Fprintln(w, "recorded    "+summary(&o.Recorded))
		fmt.Fprintln(w, "replayed    "+summary(&o.Replayed))
		if o.Identical {
			fmt.Fprintln(w, "            identical: the same explanation, byte for byte")
		} else {
			fmt.Fprintln(w, "            DIFFERS:")
			redactedNote(w, o.RedactedRead)
			diffLines(w, "recorded", "replayed", &o.Recorded, &o.Replayed)
		}
	}
	if o.Current != nil {
		fmt.Fprintln(w, "today       "+summary(o.Current))
		switch {
		case o.CurrentChanged:
			fmt.Fprintln(w, "            today's policy and config decide differently:")
		case o.Current.Error != "":
			fmt.Fprintln(w, "            refused the same way today; what else differs:")
		default:
			fmt.Fprintln(w, "            the same model today; what else differs:")
		}
		redactedNote(w, o.CurrentRedactedRead)
		diffLines(w, "recorded", "today", &o.Recorded, o.Current)
	}
}

// redactedNote says why a replay can differ with nothing changed: the
// policy read a value the record keeps redacted.
func redactedNote(w io.Writer, paths []string) {
	for _, p := range paths {
		fmt.Fprintf(w, "            the policy reads %s, which the audit record keeps redacted: it was decided again on the placeholder, not on what the client sent\n", shown(p))
	}
}

func short(h string) string {
	if len(h) > 19 {
		return h[:19]
	}
	return h
}

func summary(e *replayExplanation) string {
	s := shown(e.Chosen)
	if e.Error != "" {
		s = "refused: " + shown(e.Error)
	}
	if e.Route != "" {
		s += " via route " + shown(e.Route)
	}
	if e.Reason != "" {
		s += " — " + shown(e.Reason)
	}
	return s
}

// diffLines prints the difference between two explanations as a unified
// diff of their indented JSON (the routes' diff, unifiedDiff).
func diffLines(w io.Writer, la, lb string, a, b *replayExplanation) {
	ab, _ := json.MarshalIndent(a, "", "  ")
	bb, _ := json.MarshalIndent(b, "", "  ")
	d := unifiedDiff(la, lb, string(ab)+"\n", string(bb)+"\n")
	if d == "" {
		fmt.Fprintln(w, "      (nothing)")
		return
	}
	for _, l := range strings.Split(strings.TrimRight(d, "\n"), "\n") {
		fmt.Fprintln(w, "      "+shownJSON(l))
	}
}

// impact is what a period's what-if found.
type impact struct {
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Workspace string    `json:"workspace,omitempty"`
	// Against is --against's config file: the decisions are compared
	// with its, not with the records'.
	Against       string         `json:"against,omitempty"`
	Decisions     int            `json:"decisions"`
	Replayed      int            `json:"replayed"`
	NotReplayable int            `json:"not_replayable"`
	Changed       int            `json:"changed"`
	Transitions   map[string]int `json:"transitions"`
	// Examples are one decision id per kind of change (ExampleOf), in the
	// order the kinds are printed, up to maxExamples.
	Examples  []string          `json:"examples,omitempty"`
	ExampleOf map[string]string `json:"example_of,omitempty"`
	// RedactedRead counts, per input value a policy reads that records
	// keep redacted, the records that hold it redacted: their replayed
	// decisions may differ from what the request would get.
	RedactedRead map[string]int `json:"redacted_read,omitempty"`
}

// maxExamples bounds the kinds of change given an example id.
const maxExamples = 20

// period replays every decision of a period with today's policy and
// config and counts what would change, and how: from the record, or from
// --against's decision of the same inputs.
func (rp *replayer) period(f audit.Filter, asJSON bool, stdout io.Writer) error {
	im := impact{From: f.From, To: f.To, Workspace: f.Workspace, Against: rp.againstPath, Transitions: map[string]int{}, ExampleOf: map[string]string{}}
	var after *audit.Cursor
	for {
		es, next, err := rp.st.Query(rp.ctx, f, after, 500)
		if err != nil {
			return err
		}
		for i := range es {
			if es[i].Body == nil {
				continue
			}
			im.Decisions++
			o := rp.replayRecord(&es[i], false, true)
			if o.NotReplayable != "" || o.Current == nil {
				if k := rp.today(); k.err != nil {
					return fmt.Errorf("today's config: %w", k.err)
				}
				if rp.againstPath != "" {
					if k := rp.base(); k.err != nil {
						return fmt.Errorf("--against's config: %w", k.err)
					}
				}
				im.NotReplayable++
				continue
			}
			im.Replayed++
			for _, p := range o.CurrentRedactedRead {
				if im.RedactedRead == nil {
					im.RedactedRead = map[string]int{}
				}
				im.RedactedRead[p]++
			}
			was := &o.Recorded
			if o.Against != nil {
				was = o.Against
			}
			if decidedDifferently(was, o.Current) {
				im.Changed++
				t := label(was) + " → " + label(o.Current)
				im.Transitions[t]++
				if _, ok := im.ExampleOf[t]; !ok && len(im.ExampleOf) < maxExamples {
					im.ExampleOf[t] = o.ID
				}
			}
		}
		if next == nil {
			break
		}
		after = next
	}
	keys := make([]string, 0, len(im.Transitions))
	for k := range im.Transitions {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if im.Transitions[keys[i]] != im.Transitions[keys[j]] {
			return im.Transitions[keys[i]] > im.Transitions[keys[j]]
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		if id, ok := im.ExampleOf[k]; ok {
			im.Examples = append(im.Examples, id)
		}
	}
	if asJSON {
		return writeJSONTo(stdout, im)
	}
	fmt.Fprintf(stdout, "%d decisions from %s to %s", im.Decisions, im.From.Format(time.RFC3339), im.To.Format(time.RFC3339))
	if im.Workspace != "" {
		fmt.Fprintf(stdout, " in workspace %s", im.Workspace)
	}
	if im.Against != "" {
		fmt.Fprintf(stdout, ": %d replayed with the policy and config of both %s and %s, %d not replayable\n", im.Replayed, shown(rp.cfgPath), shown(im.Against), im.NotReplayable)
		fmt.Fprintf(stdout, "%d would be decided differently than %s decides them", im.Changed, shown(im.Against))
	} else {
		fmt.Fprintf(stdout, ": %d replayed with today's policy and config, %d not replayable\n", im.Replayed, im.NotReplayable)
		fmt.Fprintf(stdout, "%d would be decided differently than recorded", im.Changed)
	}
	if im.Replayed > 0 {
		fmt.Fprintf(stdout, " (%.1f%%)", 100*float64(im.Changed)/float64(im.Replayed))
	}
	fmt.Fprintln(stdout)
	for _, k := range keys {
		fmt.Fprintf(stdout, "  %6d  %s", im.Transitions[k], shown(k))
		if id, ok := im.ExampleOf[k]; ok {
			fmt.Fprintf(stdout, "   e.g. %s", shown(id))
		}
		fmt.Fprintln(stdout)
	}
	if len(im.Examples) > 0 {
		fmt.Fprintln(stdout, "look at one: stellwerk replay ID --with-current")
	}
	paths := make([]string, 0, len(im.RedactedRead))
	for p := range im.RedactedRead {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(stdout, "warning: the policy reads %s, which the audit record keeps redacted in %d records: their replayed decisions may differ from what the requests would get\n", shown(p), im.RedactedRead[p])
	}
	if im.Against == "" && im.Changed > 0 {
		fmt.Fprintln(stdout, "(compared with what was recorded: changes made during the period count too; --against CONFIG compares with the config in force)")
	}
	return nil
}

func label(e *replayExplanation) string {
	if e.Error != "" {
		return "refused (" + e.Error + ")"
	}
	return e.Chosen
}
