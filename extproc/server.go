// Package extproc is the Envoy-facing side of stellwerk: a gRPC ext_proc
// server that runs one filter per HTTP request, in one of two roles (the
// client-facing edge, or one failover attempt's egress), one method per
// phase, and turns decisions into header and body mutations or immediate responses. It
// knows Envoy; it knows nothing about how a model is chosen.
package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/live"
	"github.com/stellwerk/stellwerk/internal/logevery"
	"github.com/stellwerk/stellwerk/internal/notify"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/telemetry"
)

// State is everything a request needs that can change on reload. It is
// swapped as a whole.
type State struct {
	Router          *decision.Router
	Keys            *auth.Keys
	MaxRequestBytes int64
	// Hosts are the host names the listener answers to (nil: any;
	// config.Config.AllowedHosts); a request naming the gateway by an IP
	// address is always answered.
	Hosts []string
	// MessageTimeout is Envoy's ext_proc message timeout (envoy.extproc_timeout):
	// the pipelined mode extends it for a request whose body is slow to
	// arrive (extproc/pipeline.go). Zero: the default, 2 s.
	MessageTimeout time.Duration
	// UploadLimit bounds those extensions (envoy.request_timeout): a body
	// still arriving after it gets none, and Envoy's message timeout ends
	// the request (zero: 5 min). A client trickling a chunk every 40 s held
	// a request open without end (an attacker's pass).
	UploadLimit time.Duration
	// Failover is set when requests go through the failover cluster
	// (standalone mode); nil sends each request to its provider's cluster.
	Failover *Failover
	// Ledger holds budgets and rate limits (nil: none are configured):
	// the edge reserves once a request is decided and settles once its
	// usage is known (docs/budgets.md).
	Ledger *ledger.Ledger
	// Spend takes one spend-ledger row per decided chat request, whether
	// or not budgets are configured (nil: none is kept). Record never
	// blocks.
	Spend spend.Recorder
	// SpendTag is the request metadata's member whose value a spend row
	// keeps as its tag (spend.tag; "": none).
	SpendTag string
	// Notify is told when a budget a request meets reaches its warn
	// threshold or is exhausted (nil: no webhook configured).
	Notify *notify.Webhook
	// Limited: the config has budgets or rate limits, so every request
	// meets the ledger; otherwise only a key with limits of its own does.
	Limited bool
	// WorkspaceClusters are the provider clusters that carry a workspace's
	// own key (bring your own key), by workspace and provider name.
	WorkspaceClusters map[WorkspaceProvider]string
	// WorkspaceKeys are those keys themselves (Envoy's copies of the
	// clusters inject them; the control plane holds them for its SDS
	// secrets), here only to take them out of what a provider echoes.
	WorkspaceKeys map[WorkspaceProvider]string
	// keyLimits caches each store key's compiled limits (by key id; the
	// entry is replaced when the key's record changes).
	keyLimits sync.Map
	// CheckRoute (clusters mode) refuses a request whose Envoy route is not
	// stellwerk's (header.DropInRoute), read from the xds.route_name
	// attribute the drop-in filter sends.
	CheckRoute bool
	// Audit takes one decision record per chat request that reached the
	// body phase, handed over when its stream ends (nil: no audit log).
	// AuditRefuse (audit.on_store_down: refuse) answers chat requests 503
	// while the log is not healthy.
	Audit       *audit.Log
	AuditRefuse bool
	// Feedback keeps the votes of POST /v1/feedback (nil: no audit log to
	// check them against; the endpoint answers 503).
	Feedback *Feedback
	// AuditContent are the workspaces whose records keep the request's and
	// the answer's text, redacted (audit.content.workspaces).
	AuditContent map[string]bool
	// Live takes a view of each decision record while someone watches the
	// console's stream (nil or nobody watching: nothing is built for it).
	Live *live.Hub
	// RouteLimiter counts named routes' rate_limit nodes (nil: they cannot
	// be checked); RouteCounters count routes' answers per version and arm
	// (nil: not counted).
	RouteLimiter  flow.Limiter
	RouteCounters *flow.Counters
	// Metrics records what became of each request when its stream ends
	// (nil: no metrics). One for the process: it outlives reloads.
	Metrics *telemetry.Metrics
	// Traces sends a span per request to an OTLP collector (nil: off).
	Traces *telemetry.Tracing
	// Versions are the content hashes of the config and catalog this state
	// was built from, for the records.
	Versions   audit.Versions
	modelsJSON map[*decision.Visible][]byte // the /v1/models answer per visible set
	// uncredentialed are the providers whose credential is not configured
	// (their models are left out of /v1/models).
	uncredentialed []string
	// forwardable are the client headers some provider's forward_headers
	// lists; every other header outside header.Forwarded is removed at the edge.
	forwardable []string
	// storeDown bounds the lines a budget store outage writes per request
	// to one an interval each (the fleet probe counted 740 in 30 s).
	storeDown struct{ refused, unchecked, unrecorded, settle, release logevery.Limiter }
	// misrouted bounds the lines requests through another route than
	// stellwerk's write (checkRoute): a client chooses how many it sends.
	misrouted logevery.Limiter
	// refusedKeys bounds the lines a store key refused for its state
	// writes, per key (key id → *logevery.Limiter): a revoked key an
	// attacker keeps trying is said once an interval, with its count.
	refusedKeys sync.Map
}

// refusedKey logs that a store key was refused for its state (revoked,
// rotated out, expired): its id, why and where it came from, once an
// interval per key. The client's 401 says none of it.
func (st *State) refusedKey(log *zap.Logger, keyID, from string, err error) {
	why := "revoked"
	switch {
	case errors.Is(err, keys.ErrExpired):
		why = "expired"
	case errors.Is(err, keys.ErrRotated):
		why = "rotated_out"
	case !errors.Is(err, keys.ErrRevoked):
		return // the store failed: not the key's state
	}
	st.Metrics.RefusedKey(why)
	l, _ := st.refusedKeys.LoadOrStore(keyID, &logevery.Limiter{})
	if ok, n := l.(*logevery.Limiter).Allow(); ok {
		log.Warn("a refused key was used: its requests are answered 401", zap.String("key_id", keyID), zap.String("state", why),
			zap.String("client_address", from), zap.Int64("requests", n))
	}
}

// readsUsage reports whether anything reads a request's usage and cost
// without a budget to settle: the spend ledger, the audit log, the metrics
// or the traces.
func (st *State) readsUsage() bool {
	return st.Spend != nil || st.Audit != nil || st.Metrics != nil || st.Traces != nil
}

// WorkspaceProvider keys State.WorkspaceClusters.
type WorkspaceProvider struct{ Workspace, Provider string }

// workspaceCluster is the cluster with the workspace's own key for a
// provider, "" when the workspace brings none.
func (st *State) workspaceCluster(workspace, provider string) string {
	if len(st.WorkspaceClusters) == 0 || workspace == "" {
		return ""
	}
	return st.WorkspaceClusters[WorkspaceProvider{workspace, provider}]
}

// Failover is what the ext_proc side needs of the failover settings.
type Failover struct {
	MaxAttempts    int
	AttemptTimeout time.Duration
	// First are the providers' first-attempt clusters by provider name
	// (xds/firstattempt.go).
	First map[string]string
}

// Server implements Envoy's ExternalProcessor service.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	state atomic.Pointer[State]
	log   *zap.Logger
	newID func() string
	// attempts is what egress streams saw, for the edge stream of the same
	// request (both usually run in this process).
	attempts attemptLog
	// active counts the ext_proc streams in progress (Drain).
	active atomic.Int64
	// told are the budget events this process logged without a webhook:
	// once per budget and period, whatever config reloads come between.
	told toldOnce
}

var _ extprocv3.ExternalProcessorServer = (*Server)(nil)

func (st *State) messageTimeout() time.Duration {
	if st.MessageTimeout > 0 {
		return st.MessageTimeout
	}
	return 2 * time.Second
}

// uploadLimit is UploadLimit or its default.
func (st *State) uploadLimit() time.Duration {
	if st.UploadLimit > 0 {
		return st.UploadLimit
	}
	return 5 * time.Minute
}

// New returns a server serving st until SetState swaps it.
func New(st *State, log *zap.Logger) *Server {
	s := &Server{log: log.Named("extproc"), newID: NewDecisionID}
	s.state.Store(st)
	return s
}

// SetState swaps the state used by requests that start after the call.
func (s *Server) SetState(st *State) { s.state.Store(st) }

// Process handles one HTTP request's stream of phases, as the edge filter
// or, for a stream whose gRPC metadata names a provider, as that provider's
// egress filter.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	s.active.Add(1)
	defer s.active.Add(-1)
	ctx := stream.Context()
	f := filter{state: s.state.Load(), log: s.log, id: s.newID(), seen: &s.attempts, told: &s.told}
	if provider := egressProvider(ctx); provider != "" {
		p := &egress{filter: f, provider: provider}
		defer p.finish()
		return serve(ctx, stream, &p.filter,
			func(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse { return p.handle(req) },
			func(e *apierr.Error) *extprocv3.ProcessingResponse { return p.immediate(e) })
	}
	p := &edge{filter: f, ctx: ctx}
	if f.state.CheckRoute {
		p.hostHeader = dropInHostHeader(ctx)
	}
	defer p.finish()
	return serveEdge(ctx, stream, p)
}

// egressProvider is the provider an egress listener's stream sends to.
// (ValueFromIncomingContext: FromIncomingContext copies every key of the
// stream's metadata.)
func egressProvider(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, header.Egress); len(v) == 1 {
		return v[0]
	}
	return ""
}

// dropInHostHeader reports whether an operator's Envoy runs the drop-in
// pieces of 2026-12-07 or later (header.DropIn, gRPC metadata of the
// filter's stream), whose route reads the provider's host from
// header.Host; pieces pasted before read it from :authority.
func dropInHostHeader(ctx context.Context) bool {
	v := metadata.ValueFromIncomingContext(ctx, header.DropIn)
	if len(v) != 1 {
		return false
	}
	n, err := strconv.Atoi(v[0]) // a number: "10" is a later version than "2"
	return err == nil && n >= 2
}

// serve answers each message of a stream with handle until the stream
// ends. Its role's filter (f) and fail stay on Process's stack: neither is
// kept beyond the stream.
func serve(ctx context.Context, stream extprocv3.ExternalProcessor_ProcessServer, f *filter,
	handle func(*extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse,
	fail func(*apierr.Error) *extprocv3.ProcessingResponse) error {
	for {
		req, err := recv(ctx, stream)
		if req == nil {
			return err
		}
		resp := safeHandle(f, req, handle, fail)
		if err := stream.Send(resp); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// recv is the stream's next message; nil when the stream is over, with the
// error to end it with (nil when Envoy or the client ended it).
func recv(ctx context.Context, stream extprocv3.ExternalProcessor_ProcessServer) (*extprocv3.ProcessingRequest, error) {
	req, err := stream.Recv()
	if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || ctx.Err() != nil {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

// safeHandle turns a panic in request handling into a 500 for this request
// only; the server and every other stream keep running.
func safeHandle(f *filter, req *extprocv3.ProcessingRequest,
	handle func(*extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse,
	fail func(*apierr.Error) *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	return recovered(f, func() *extprocv3.ProcessingResponse { return handle(req) },
		func() *extprocv3.ProcessingResponse { return fail(apierr.Internal()) })
}

// recovered is run's result, or, should run panic, the panic logged and
// fail's result.
func recovered[T any](f *filter, run func() T, fail func() T) (res T) {
	defer func() {
		if r := recover(); r != nil {
			f.log.Error("panic while processing request", zap.String("decision_id", f.id),
				zap.String("panic", fmt.Sprint(r)), zap.ByteString("stack", debug.Stack()))
			res = fail()
		}
	}()
	return run()
}

// Drain waits until no ext_proc stream is in progress, polling, and
// reports whether that happened before ctx ended. Shutdown calls it once
// the gRPC server refuses new streams: a request in flight, a stream of
// many minutes included, is finished rather than cut.
func (s *Server) Drain(ctx context.Context) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for s.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}
