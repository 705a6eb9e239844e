package xds

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// NodeStatus is what one connected Envoy (one xDS stream) was sent, what it
// accepted and what it rejected, per resource type (cluster, listener,
// route, secret). /status and `stellwerk xds dump` show it.
type NodeStatus struct {
	// Node is the Envoy's node id (its bootstrap's node.id).
	Node   string `json:"node"`
	Stream int64  `json:"stream"`
	// AckedVersion is the snapshot version Envoy accepted for every type
	// it subscribes to, "" while the types differ (an update under way or
	// a rejection).
	AckedVersion string                `json:"acked_version"`
	Types        map[string]TypeStatus `json:"types"`
	// Rejections are the types whose last update Envoy refused; it keeps
	// serving the version in Types[…].Acked.
	Rejections []Rejection `json:"rejections,omitempty"`
}

// TypeStatus is one resource type of one Envoy.
type TypeStatus struct {
	Sent  string `json:"sent"`
	Acked string `json:"acked"`
}

// Rejection is a NACK: Envoy's error detail for a version it refused.
type Rejection struct {
	Node    string    `json:"node"`
	Type    string    `json:"type"`
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// nodeState is one stream's record; the Publisher's ackMu guards it.
type nodeState struct {
	stream int64
	node   string
	types  map[string]*typeState
}

type typeState struct {
	sent, acked string
	// sentNonces maps the nonces of responses still unanswered to their
	// version, so a NACK names the version it refuses.
	sentNonces map[string]string
	rejection  *Rejection
}

func newNodeState(stream int64) *nodeState {
	return &nodeState{stream: stream, types: map[string]*typeState{}}
}

func (n *nodeState) typ(url string) *typeState {
	short := shortType(url)
	t := n.types[short]
	if t == nil {
		t = &typeState{sentNonces: map[string]string{}}
		n.types[short] = t
	}
	return t
}

func (n *nodeState) sent(resp *discoveryv3.DiscoveryResponse) {
	t := n.typ(resp.GetTypeUrl())
	t.sent = resp.GetVersionInfo()
	if len(t.sentNonces) > 16 { // Envoy answers each; a few outstanding at most
		clear(t.sentNonces)
	}
	t.sentNonces[resp.GetNonce()] = resp.GetVersionInfo()
}

// request records an ACK or NACK. For a NACK it returns the rejection
// (Envoy names the response it refuses by nonce), and whether it is news:
// the first refusal of that version.
func (n *nodeState) request(r *discoveryv3.DiscoveryRequest, now time.Time) (rej *Rejection, fresh bool) {
	if id := r.GetNode().GetId(); id != "" {
		n.node = id // Envoy may send it on the first request only
	}
	t := n.typ(r.GetTypeUrl())
	nonce := r.GetResponseNonce()
	version, known := t.sentNonces[nonce]
	delete(t.sentNonces, nonce)
	d := r.GetErrorDetail()
	if d == nil {
		if r.GetVersionInfo() != "" {
			t.acked = r.GetVersionInfo()
			if t.rejection != nil && t.acked == t.sent {
				t.rejection = nil // a later version was accepted
			}
		}
		return nil, false
	}
	if !known {
		version = t.sent
	}
	if t.rejection != nil && t.rejection.Version == version && t.rejection.Error == d.GetMessage() {
		return t.rejection, false
	}
	t.rejection = &Rejection{Node: n.node, Type: shortType(r.GetTypeUrl()), Version: version, Error: d.GetMessage(), At: now}
	return t.rejection, true
}

func (n *nodeState) status() NodeStatus {
	st := NodeStatus{Node: n.node, Stream: n.stream, Types: map[string]TypeStatus{}}
	same := true
	for name, t := range n.types {
		st.Types[name] = TypeStatus{Sent: t.sent, Acked: t.acked}
		if st.AckedVersion == "" {
			st.AckedVersion = t.acked
		}
		same = same && t.acked != "" && t.acked == st.AckedVersion
		if t.rejection != nil {
			st.Rejections = append(st.Rejections, *t.rejection)
		}
	}
	if !same {
		st.AckedVersion = ""
	}
	slices.SortFunc(st.Rejections, func(a, b Rejection) int { return strings.Compare(a.Type, b.Type) })
	return st
}

// shortType is "cluster" for …envoy.config.cluster.v3.Cluster.
func shortType(url string) string {
	name := url[strings.LastIndex(url, ".")+1:]
	return strings.ToLower(strings.TrimSuffix(name, "Configuration"))
}

// Nodes is every connected Envoy's status, by node id then stream.
func (p *Publisher) Nodes() []NodeStatus {
	p.ackMu.Lock()
	out := make([]NodeStatus, 0, len(p.nodes))
	for _, n := range p.nodes {
		out = append(out, n.status())
	}
	p.ackMu.Unlock()
	slices.SortFunc(out, func(a, b NodeStatus) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return cmp.Compare(a.Stream, b.Stream)
	})
	return out
}

// Dump is what `stellwerk xds dump` prints: the snapshot every Envoy is
// offered, and what each connected Envoy was sent, accepted and rejected.
// Secrets are listed by name only.
type Dump struct {
	Version   string            `json:"snapshot_version"`
	Nodes     []NodeStatus      `json:"nodes"`
	Clusters  []json.RawMessage `json:"clusters"`
	Listeners []json.RawMessage `json:"listeners"`
	Routes    []json.RawMessage `json:"routes"`
	Secrets   []string          `json:"secrets"`
}

// Dump renders the published snapshot and the connected Envoys.
func (p *Publisher) Dump() (Dump, error) {
	d := Dump{Version: p.Version(), Nodes: p.Nodes(), Clusters: []json.RawMessage{}, Listeners: []json.RawMessage{},
		Routes: []json.RawMessage{}, Secrets: []string{}}
	res := p.published.Load()
	if res == nil {
		return d, nil
	}
	var err error
	add := func(out *[]json.RawMessage, m proto.Message) {
		b, e := protojson.Marshal(m)
		if e != nil {
			err = e
			return
		}
		*out = append(*out, b)
	}
	for _, c := range res.Clusters {
		add(&d.Clusters, c)
	}
	for _, l := range res.Listeners {
		add(&d.Listeners, l)
	}
	for _, r := range res.Routes {
		add(&d.Routes, r)
	}
	for _, s := range res.Secrets {
		d.Secrets = append(d.Secrets, s.GetName())
	}
	return d, err
}
