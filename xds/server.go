package xds

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	sotwv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// snapshotKey is the one snapshot every Envoy node receives: stellwerk
// serves the same routing to each Envoy in front of it.
const snapshotKey = "stellwerk"

type sameForAll struct{}

func (sameForAll) ID(*corev3.Node) string { return snapshotKey }

// Publisher is the single writer of the snapshot cache and the ADS server
// Envoy connects to.
type Publisher struct {
	// cache holds clusters, listeners and routes: in ADS mode, answered in
	// Envoy's order (clusters before what references them) and only for
	// requests naming every resource of their type.
	cache cachev3.SnapshotCache
	// secrets holds the provider credentials, outside ADS mode: a secret
	// request is answered for the names it asks. In ADS mode a request had
	// to name every secret in the snapshot, and Envoy never asks for the
	// secret of a cluster it refused, so one refused cluster held back every
	// credential (a new provider's, a rotated key) until stellwerk restarted.
	secrets cachev3.SnapshotCache
	server  serverv3.Server
	log     *zap.Logger
	mu      sync.Mutex // serialises Publish
	version atomic.Value
	streams atomic.Int64
	// salt keys the hash of secrets in the snapshot version, which the
	// admin API shows: no one can test a guessed key against it.
	salt []byte

	ackMu sync.Mutex
	// acked is, per open xDS stream and resource type it subscribed to,
	// the last version Envoy accepted ("" before the first).
	acked map[int64]map[string]string
	// nodes is what each open stream's Envoy was sent and rejected (nodes.go).
	nodes map[int64]*nodeState
	// published is the snapshot's resources, for Dump.
	published atomic.Pointer[Resources]
}

// NewPublisher creates the cache and the ADS server; ctx bounds the server.
func NewPublisher(ctx context.Context, log *zap.Logger) *Publisher {
	log = log.Named("xds")
	p := &Publisher{log: log, salt: make([]byte, 32), acked: map[int64]map[string]string{}, nodes: map[int64]*nodeState{}}
	if _, err := rand.Read(p.salt); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	p.cache = cachev3.NewSnapshotCache(true, sameForAll{}, zapAdapter{log.Sugar()})
	p.secrets = cachev3.NewSnapshotCache(false, sameForAll{}, zapAdapter{log.Sugar()})
	mux := &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return cacheFor(r.GetTypeUrl()) },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return cacheFor(r.GetTypeUrl()) },
		Caches:        map[string]cachev3.Cache{"ads": p.cache, "secrets": p.secrets},
	}
	p.server = serverv3.NewServer(ctx, mux, p.callbacks(), sotwv3.WithOrderedADS())
	p.version.Store("")
	return p
}

// cacheFor names the cache that answers a resource type.
func cacheFor(typeURL string) string {
	if typeURL == resource.SecretType {
		return "secrets"
	}
	return "ads"
}

// Register adds the ADS service to a gRPC server.
func (p *Publisher) Register(s *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s, p.server)
}

// Publish translates the IR and, if it is valid and consistent, makes it the
// snapshot every Envoy gets. On error the previous snapshot stays.
func (p *Publisher) Publish(ctx context.Context, ir IR) (string, error) {
	res, err := Translate(ir)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	version, err := contentVersion(res, p.salt)
	if err != nil {
		return "", err
	}
	snap, err := cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{
		resource.ClusterType:  toResources(res.Clusters),
		resource.ListenerType: toResources(res.Listeners),
		resource.RouteType:    toResources(res.Routes),
	})
	if err != nil {
		return "", err
	}
	if err := snap.Consistent(); err != nil {
		return "", fmt.Errorf("inconsistent snapshot: %w", err)
	}
	secrets, err := cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{resource.SecretType: toResources(res.Secrets)})
	if err != nil {
		return "", err
	}
	// Secrets first: a new cluster's credential is there when Envoy,
	// having taken the cluster, asks for it.
	if err := p.secrets.SetSnapshot(ctx, snapshotKey, secrets); err != nil {
		return "", err
	}
	if err := p.cache.SetSnapshot(ctx, snapshotKey, snap); err != nil {
		return "", err
	}
	p.version.Store(version)
	p.published.Store(&res)
	// A refusal no longer stands where Envoy already has what is published
	// now: a refused change taken back (SetProviderCluster) republishes
	// the version Envoy kept, which it is not sent again to accept.
	p.ackMu.Lock()
	for _, n := range p.nodes {
		for _, t := range n.types {
			if t.rejection != nil && t.acked == version {
				t.rejection = nil
			}
		}
	}
	p.ackMu.Unlock()
	p.log.Info("published snapshot", zap.String("version", version), zap.Int("clusters", len(res.Clusters)))
	return version, nil
}

// Version is the content version of the published snapshot ("" before the first).
func (p *Publisher) Version() string { return p.version.Load().(string) }

// Streams is the number of open xDS streams (connected Envoys).
func (p *Publisher) Streams() int64 { return p.streams.Load() }

func toResources[T types.Resource](in []T) []types.Resource {
	out := make([]types.Resource, len(in))
	for i, r := range in {
		out[i] = r
	}
	return out
}

// contentVersion hashes the deterministic encoding of every resource, so an
// unchanged config republishes the same version and Envoy does nothing.
// Secrets are hashed under a per-process key: after a restart the version
// differs, and Envoy finds every resource unchanged.
func contentVersion(res Resources, salt []byte) (string, error) {
	h := sha256.New()
	if len(res.Secrets) > 0 {
		sh := hmac.New(sha256.New, salt)
		for _, s := range res.Secrets {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
			if err != nil {
				return "", err
			}
			sh.Write(b)
		}
		h.Write(sh.Sum(nil))
	}
	opts := proto.MarshalOptions{Deterministic: true}
	add := func(m proto.Message) error {
		b, err := opts.Marshal(m)
		if err != nil {
			return err
		}
		h.Write(b)
		return nil
	}
	for _, c := range res.Clusters {
		if err := add(c); err != nil {
			return "", err
		}
	}
	for _, l := range res.Listeners {
		if err := add(l); err != nil {
			return "", err
		}
	}
	for _, r := range res.Routes {
		if err := add(r); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// WaitApplied waits until every connected Envoy has accepted version for
// every resource type it subscribes to, until one refuses it, or until
// timeout, and reports whether all accepted it. A reload calls it before the routing state that needs the new
// clusters, listeners and secrets takes over: a request routed to a
// provider Envoy does not know yet would fail with "no cluster".
func (p *Publisher) WaitApplied(ctx context.Context, version string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if p.applied(version) {
			return true
		}
		// An Envoy that refused it will not apply it, and none connected
		// will not either: stop waiting.
		if time.Now().After(deadline) || ctx.Err() != nil || p.rejected(version) || p.Streams() == 0 {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rejected reports whether a connected Envoy refused version.
func (p *Publisher) rejected(version string) bool { return p.Refusal(version) != "" }

// Refusal is the error of a connected Envoy that refused version, "" when
// none did.
func (p *Publisher) Refusal(version string) string {
	p.ackMu.Lock()
	defer p.ackMu.Unlock()
	for _, n := range p.nodes {
		for _, t := range n.types {
			if t.rejection != nil && t.rejection.Version == version {
				return t.rejection.Error
			}
		}
	}
	return ""
}

// applied: every connected Envoy accepted version for every type it
// subscribes to; false when none is connected (nothing applied it).
func (p *Publisher) applied(version string) bool {
	p.ackMu.Lock()
	defer p.ackMu.Unlock()
	if len(p.acked) == 0 {
		return false
	}
	for _, types := range p.acked {
		for _, v := range types {
			if v != version {
				return false
			}
		}
	}
	return true
}

// LastRejection is the error of the latest refusal still standing: a
// resource type of a connected Envoy that refused a version and has not
// accepted a later one. "" when there is none. (One value for all types
// let the other types' acceptance of the same version hide a refused
// cluster.)
func (p *Publisher) LastRejection() string {
	p.ackMu.Lock()
	defer p.ackMu.Unlock()
	var last *Rejection
	for _, n := range p.nodes {
		for _, t := range n.types {
			if r := t.rejection; r != nil && (last == nil || r.At.After(last.At)) {
				last = r
			}
		}
	}
	if last == nil {
		return ""
	}
	return last.Error
}

func (p *Publisher) callbacks() serverv3.CallbackFuncs {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(_ context.Context, id int64, _ string) error {
			p.streams.Add(1)
			p.ackMu.Lock()
			p.acked[id] = map[string]string{}
			p.nodes[id] = newNodeState(id)
			p.ackMu.Unlock()
			return nil
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) {
			p.streams.Add(-1)
			p.ackMu.Lock()
			delete(p.acked, id)
			delete(p.nodes, id)
			p.ackMu.Unlock()
		},
		StreamRequestFunc: func(id int64, r *discoveryv3.DiscoveryRequest) error {
			p.ackMu.Lock()
			if types := p.acked[id]; types != nil {
				if _, seen := types[r.GetTypeUrl()]; !seen || r.GetErrorDetail() == nil {
					types[r.GetTypeUrl()] = r.GetVersionInfo() // a NACK keeps the last accepted
				}
			}
			var rej *Rejection
			var fresh bool
			if n := p.nodes[id]; n != nil {
				rej, fresh = n.request(r, time.Now())
			}
			p.ackMu.Unlock()
			if d := r.GetErrorDetail(); d != nil {
				// Said once per rejected version, however often Envoy
				// repeats it.
				if fresh {
					p.log.Error("envoy rejected configuration", zap.String("node", rej.Node),
						zap.String("type", rej.Type), zap.String("rejected_version", rej.Version),
						zap.String("serving_version", r.GetVersionInfo()), zap.String("error", d.GetMessage()))
				}
				// The snapshot cache answers a request whose version is not
				// the snapshot's at once, with the same snapshot: Envoy
				// would refuse it again, thousands of times a second. A
				// NACK of the current version waits for the next snapshot
				// instead, as an ACK would (go-control-plane#962).
				if rej != nil && rej.Version != "" && rej.Version == p.Version() {
					r.VersionInfo = rej.Version
				}
			}
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			p.ackMu.Lock()
			if n := p.nodes[id]; n != nil {
				n.sent(resp)
			}
			p.ackMu.Unlock()
		},
	}
}

// zapAdapter lets go-control-plane log through zap.
type zapAdapter struct{ s *zap.SugaredLogger }

func (z zapAdapter) Debugf(f string, a ...any) { z.s.Debugf(f, a...) }
func (z zapAdapter) Infof(f string, a ...any)  { z.s.Debugf(f, a...) } // its info is chatty
func (z zapAdapter) Warnf(f string, a ...any)  { z.s.Warnf(f, a...) }
func (z zapAdapter) Errorf(f string, a ...any) { z.s.Errorf(f, a...) }
