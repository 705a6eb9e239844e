// The decided request on its way: to a provider's own cluster, or to the
// failover cluster with its plan, its first attempt rewritten here when
// that is a plain edit.

package extproc

import (
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/sjson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/header"
)

// providerNeutral makes the edits every provider needs: the per-request
// policy is stellwerk's, not the provider's, and stellwerk needs the usage
// of every stream. It returns body itself when nothing changes.
func providerNeutral(body []byte, hasPolicy, askUsage bool) ([]byte, error) {
	var err error
	nb := body
	if hasPolicy {
		nb, err = sjson.DeleteBytes(nb, "policy")
	}
	if err == nil && askUsage {
		nb, err = sjson.SetBytes(nb, "stream_options.include_usage", true)
	}
	return nb, err
}

// routeDirect sends the request to the provider's own cluster (clusters
// mode: the operator's route has no failover).
func (p *edge) routeDirect(m *catalog.Model, orig, body []byte) *extprocv3.ProcessingResponse {
	hs, rm, nb, perr := p.rewriteFor(m, body)
	if perr != nil {
		return p.immediate(perr)
	}
	cluster := m.Provider.Cluster
	if wc := p.state.workspaceCluster(p.workspace, m.Provider.Name); wc != "" {
		cluster = wc // the workspace's own key
	}
	hs = append(hs, setHeader(header.Cluster, cluster))
	return continueRequestBody(bodyChange(hs, rm, orig, nb))
}

// overflowRisk: the prompt's estimate comes within a quarter of the first
// model's context window and a later model of the plan has a larger one.
// The provider may count more tokens than stellwerk's estimate (Anthropic's
// tokenizer does, and images, tools and framing vary) and answer that the
// prompt does not fit; only an egress filter, between the provider's answer
// and Envoy's retry, can fail that over to the larger model (egress.go), so
// such a first attempt is left to its egress listener to rewrite.
func (p *edge) overflowRisk(first *catalog.Model) bool {
	if need := p.class.InputTokens + p.out.media(first); need < first.ContextWindow-first.ContextWindow/4 {
		return false
	}
	for _, m := range p.plan[1:] {
		if m.ContextWindow > first.ContextWindow {
			return true
		}
	}
	return false
}

// routeWithFailover sends the request to the failover cluster with its
// attempt list. The plan's first model gets the request rewritten here when
// that is a plain edit of the client's body (its provider speaks the
// client's wire format — OpenAI, or Anthropic for a Messages API request —
// has its credential and takes every client header the request kept): its
// egress listener then only follows the answer, which saves that attempt
// two round trips. Every other attempt is rewritten by its egress listener,
// from the client's path (header.Rewritten) and the body sent on.
func (p *edge) routeWithFailover(plan []*catalog.Model, orig, body []byte) *extprocv3.ProcessingResponse {
	p.plan = plan
	p.openAttempts()
	hs := make([]*corev3.HeaderValueOption, 0, 8)
	first := p.plan[0]
	wc := p.state.workspaceCluster(p.workspace, first.Provider.Name)
	// A Responses request translated to chat is not rewritten here: a
	// retry's egress listener must get the Responses request itself. A
	// Messages request is, when its provider speaks Anthropic: the rewrite
	// only renames the model, and a retry's egress listener can rewrite
	// that body for its own provider. A stream whose first model has a
	// first-byte timeout gets it from the egress listener's route for it
	// (header.FirstByte).
	var plain bool
	if p.endpoint == epMessages {
		plain = first.Provider.WireFormat == "anthropic"
	} else {
		plain = first.Provider.WireFormat != "anthropic" && (p.endpoint != epResponses || first.NativeResponses())
	}
	if plain && (first.Provider.HasCredential() || wc != "") && !p.overflowRisk(first) {
		if rhs, rm, nb, perr := p.rewriteFor(first, body); perr == nil && len(rm) == 0 {
			hs = append(hs, rhs...)
			if len(p.plan) == 1 {
				// One attempt (a pinned model, or the only eligible one):
				// nothing to fail over to, so no failover cluster and no
				// internal listener, the provider's cluster straight away.
				// The edge sees the attempt's answer or Envoy's error for it,
				// and records it (responseHeaders).
				p.rewrote, p.direct = true, true
				cluster := first.Provider.Cluster
				if wc != "" {
					cluster = wc // the workspace's own key
				}
				hs = append(hs, setHeader(header.Cluster, cluster), setHeader(header.MaxRetries, "0"), onlyAttempt)
				return continueRequestBody(bodyChange(hs, nil, orig, nb))
			}
			body, p.rewrote = nb, true
			if fc := p.firstCluster(first, wc); fc != "" {
				return p.routeFirstDirect(fc, hs, orig, body)
			}
			hs = append(hs, setHeader(header.Rewritten, p.path))
			if first.FirstByteTimeout > 0 && p.result != nil && p.result.Chat.Stream { // a fallback follows
				hs = append(hs, setHeader(header.FirstByte, strconv.FormatInt(first.FirstByteTimeout.Milliseconds(), 10)))
			}
			if wc != "" {
				hs = append(hs, setHeader(header.Upstream, wc))
			}
		}
	}
	if len(p.state.WorkspaceClusters) > 0 {
		// A retry's egress listener picks the workspace's own key for its
		// provider.
		hs = append(hs, setHeader(header.Workspace, p.workspace))
	}
	if len(p.plan) == 1 {
		hs = append(hs, onlyAttempt)
	}
	hs = append(hs,
		setHeader(header.Cluster, header.FailoverCluster),
		setHeader(header.Plan, encodePlan(p.id, p.plan)),
		// Never more retries than the plan has other providers: beyond it
		// the balancer would have no host, never a provider outside the plan.
		setHeader(header.MaxRetries, strconv.Itoa(len(p.plan)-1)),
	)
	hosts := make([]string, len(p.plan))
	for i, m := range p.plan {
		hosts[i] = header.EgressHost(m.Provider.Name)
	}
	resp := continueRequestBody(bodyChange(hs, nil, orig, body))
	md := new(metadataValues)
	resp.DynamicMetadata = md.object(map[string]*structpb.Value{
		header.MetadataNamespace: md.nest(map[string]*structpb.Value{
			header.HostsKey: md.str(strings.Join(hosts, ",")),
		}),
	})
	return resp
}

// onlyAttempt lifts the failover route's per-try timeout
// (failover.attempt_timeout) from a request whose plan has one attempt: with
// nothing to fail over to, a late answer beats none, and the request's own
// timeout (envoy.request_timeout) bounds it. A long generation (a
// reasoning model's minutes) was cut at the attempt timeout and answered
// 503, which the SDKs sent twice more (the SDK probe). Envoy's router
// disables a per-try timeout at least as long as the route's timeout.
var onlyAttempt = setHeader(header.PerTryTimeout, strconv.FormatInt((24*time.Hour).Milliseconds(), 10))

// firstCluster is the first-attempt cluster of a plan's first model, when
// its first attempt can go straight to its provider (xds/firstattempt.go):
// the provider's shared credential, a cluster Envoy has, and no first-byte
// timeout to keep. A stream's first-byte timeout needs the egress
// listener's route: Envoy's router has one per-try timeout for all of a
// request's attempts, so the client-facing router cannot give the first
// attempt a shorter one than the last (docs/failover.md). A stream whose
// first model has it off waits for its first byte as long as a JSON
// answer does, so it goes straight too.
func (p *edge) firstCluster(first *catalog.Model, wc string) string {
	f := p.state.Failover
	if f == nil || wc != "" || (p.result != nil && p.result.Chat.Stream && first.FirstByteTimeout > 0) {
		return ""
	}
	return f.First[first.Provider.Name]
}

// routeFirstDirect sends a request the edge rewrote for its plan's first
// model to that model's first-attempt cluster: the first attempt goes to
// the provider's own cluster, each retry through the failover cluster to
// the next egress listener, which gets the plan, the client's path and the
// workspace from dynamic metadata as headers (the first provider never
// sees them). The first attempt's failure reaches stellwerk through the
// client-facing router's upstream log, named by the cluster and the
// request id (upstreamlog.go).
func (p *edge) routeFirstDirect(cluster string, hs []*corev3.HeaderValueOption, orig, body []byte) *extprocv3.ProcessingResponse {
	hs = append(hs, setHeader(header.Cluster, cluster), setHeader(header.MaxRetries, strconv.Itoa(len(p.plan)-1)))
	vals := new(metadataValues)
	md := map[string]*structpb.Value{
		header.PlanKey:      vals.str(encodePlan(p.id, p.plan)),
		header.RewrittenKey: vals.str(p.path),
		header.ModelKey:     vals.str(p.plan[0].ID),
	}
	if len(p.state.WorkspaceClusters) > 0 && p.workspace != "" {
		md[header.WorkspaceKey] = vals.str(p.workspace)
	}
	// The n-th attempt's provider, for the n-th failover cluster's subset
	// balancer (xds/firstattempt.go); every key is there, so the criteria
	// always match the same selector.
	n := p.state.Failover.MaxAttempts
	lb := make(map[string]*structpb.Value, n-1)
	for i := 2; i <= n; i++ {
		v := header.NoAttempt
		if i <= len(p.plan) {
			v = p.plan[i-1].Provider.Name
		}
		lb[header.AttemptKey(i)] = vals.str(v)
	}
	if rid := p.headers["x-request-id"]; rid != "" && p.seen.direct(rid, directFirst{decision: p.id, model: p.plan[0].ID}) {
		p.directID = rid
	}
	resp := continueRequestBody(bodyChange(hs, nil, orig, body))
	resp.DynamicMetadata = vals.object(map[string]*structpb.Value{
		header.MetadataNamespace: vals.nest(md),
		header.LBNamespace:       vals.nest(lb),
	})
	return resp
}
