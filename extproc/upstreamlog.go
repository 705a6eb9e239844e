package extproc

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/stellwerk/stellwerk/internal/header"
)

// A request's first attempt, when the edge rewrote it for its provider (the
// shortcut of docs/failover.md), has no stellwerk filter on its way: its
// egress listener only forwards it. How it went is learned without a
// stream per request:
//
//   - when it answered (any status but 429 and 5xx), the edge reads that in
//     the response headers it gets anyway, with Envoy's attempt count 1, and
//     records it (answer.go);
//   - when it failed, the client-facing router's upstream log, filtered to
//     exactly those attempts (xds.firstAttemptLog), reports it here over
//     Envoy's gRPC access log service, on the connection Envoy already
//     keeps to stellwerk, an entry as soon as the attempt ends.
//
// The two sets do not overlap, so every first attempt is recorded once.
// The access log service is served on the same socket as ext_proc: only
// Envoy reaches it (docs/envoy.md), and what it reports only ever marks a
// provider as failing, for the plan's first model, of a decision made here.

// UpstreamLog is the gRPC access log service that receives the first
// attempts' failures.
type UpstreamLog struct {
	s *Server
}

// UpstreamLog returns the access log service of s.
func (s *Server) UpstreamLog() *UpstreamLog { return &UpstreamLog{s: s} }

var _ accesslogv3.AccessLogServiceServer = (*UpstreamLog)(nil)

// StreamAccessLogs reads Envoy's entries until it closes the stream.
func (u *UpstreamLog) StreamAccessLogs(stream grpc.ClientStreamingServer[accesslogv3.StreamAccessLogsMessage, accesslogv3.StreamAccessLogsResponse]) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&accesslogv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		for _, e := range msg.GetHttpLogs().GetLogEntry() {
			u.s.firstAttemptFailed(e, time.Now())
		}
	}
}

// firstAttemptFailed records one logged first attempt. Entries that are
// not a rewritten first attempt's failure are ignored: the log's filter
// should not let them through, and the edge records the others.
func (s *Server) firstAttemptFailed(e *accesslogdatav3.HTTPAccessLogEntry, now time.Time) {
	rq := e.GetRequest().GetRequestHeaders()
	if rq["x-envoy-attempt-count"] != "1" {
		return
	}
	status := int(e.GetResponse().GetResponseCode().GetValue())
	if status != 0 && !retryable(status) {
		return
	}
	st := s.state.Load()
	c := e.GetCommonProperties()
	var id, modelID, workspace string
	if rq[header.Rewritten] != "" { // through the egress listener: the plan is in the headers
		var models []string
		var ok bool
		if id, models, ok = decodePlan(rq[header.Plan]); !ok {
			return
		}
		modelID, workspace = models[0], rq[header.Workspace]
	} else { // straight to its provider (routeFirstDirect)
		// The model: its first-attempt cluster names it in the provider's
		// answer; the request is known here when its edge stream is in
		// this process (the decision id only matters for the routing
		// object, which that stream writes). Without either (no answer,
		// another replica's request), the failure is the provider's as a
		// whole, which any of its models names. Such a first attempt used
		// the provider's shared credential (edge.firstCluster).
		modelID = e.GetResponse().GetResponseHeaders()[header.FirstModel]
		if d, ok := s.attempts.directRequest(e.GetRequest().GetRequestId()); ok {
			id = d.decision
			if modelID == "" {
				modelID = d.model
			}
		}
		if modelID == "" {
			if m := st.Router.Catalog.ModelOfCluster(c.GetUpstreamCluster()); m != nil {
				modelID = m.ID
			}
		}
	}
	m, ok := st.Router.Catalog.Lookup(modelID)
	if !ok {
		return // a reload between the decision and its attempt
	}
	elapsed := time.Duration(0)
	if d := c.GetTimeToFirstUpstreamRxByte(); d != nil {
		elapsed = d.AsDuration()
	} else if t := c.GetStartTime(); t != nil {
		elapsed = max(now.Sub(t.AsTime()), 0)
	}
	rs := e.GetResponse().GetResponseHeaders()
	flags := rs[header.UpstreamFlags] // the egress listener's own reply: its router's flags
	if flags == "" {
		flags = responseFlags(c.GetResponseFlags())
	}
	var firstByte time.Duration
	if ms, err := strconv.ParseInt(rq[header.FirstByte], 10, 64); err == nil && ms > 0 {
		firstByte = time.Duration(ms) * time.Millisecond
	}
	f := filter{state: st, log: s.log, id: id, seen: &s.attempts}
	recordAttempt(&f, 0, m, workspace, attemptResult{status: status, flags: flags,
		retryAfter: rs["retry-after"], elapsed: elapsed, firstByte: firstByte})
	if ce := s.log.Check(zap.DebugLevel, "first attempt failed"); ce != nil {
		ce.Write(zap.String("decision_id", id), zap.Int("status", status), zap.String("flags", flags))
	}
}

// responseFlags spells the flags an attempt's failure can carry as Envoy's
// access log does (%RESPONSE_FLAGS%): UT, UF, UC, UR, LR, UO, UH, URX, NR,
// DC, SI, comma-separated.
func responseFlags(f *accesslogdatav3.ResponseFlags) string {
	if f == nil {
		return ""
	}
	var b strings.Builder
	add := func(set bool, code string) {
		if !set {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(code)
	}
	add(f.GetNoHealthyUpstream(), "UH")
	add(f.GetUpstreamRequestTimeout(), "UT")
	add(f.GetLocalReset(), "LR")
	add(f.GetUpstreamRemoteReset(), "UR")
	add(f.GetUpstreamConnectionFailure(), "UF")
	add(f.GetUpstreamConnectionTermination(), "UC")
	add(f.GetUpstreamOverflow(), "UO")
	add(f.GetNoRouteFound(), "NR")
	add(f.GetDownstreamConnectionTermination(), "DC")
	add(f.GetUpstreamRetryLimitExceeded(), "URX")
	add(f.GetStreamIdleTimeout(), "SI")
	return b.String()
}
