package xds

import (
	"cmp"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/stellwerk/stellwerk/internal/config"
)

// outlierEnforcingAlways: an endpoint that meets the threshold is ejected.
const outlierEnforcingAlways = 100 // percent

// protocol is what the cluster speaks: auto (ALPN), http1 or http2.
func protocol(c Cluster) string {
	if p := c.Controls.Protocol; p != "" {
		return p
	}
	if c.TLS {
		return "auto"
	}
	return "http1"
}

// alpn is what TLS offers for the cluster's protocol.
func alpn(c Cluster) []string {
	switch protocol(c) {
	case "http1":
		return []string{"http/1.1"}
	case "http2":
		return []string{"h2"}
	}
	return []string{"h2", "http/1.1"}
}

// setProtocol chooses HTTP/1.1, HTTP/2 or either by ALPN, with the HTTP/2
// settings wherever HTTP/2 may be spoken.
func setProtocol(opts *httpv3.HttpProtocolOptions, c Cluster) {
	h2 := http2Options(c.Controls.HTTP2)
	switch protocol(c) {
	case "auto":
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_AutoConfig{AutoConfig: &httpv3.HttpProtocolOptions_AutoHttpConfig{
			Http2ProtocolOptions: h2,
		}}
	case "http2":
		if h2 == nil {
			h2 = &corev3.Http2ProtocolOptions{}
		}
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2},
		}}
	default:
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}}
	}
}

func http2Options(h *config.HTTP2Settings) *corev3.Http2ProtocolOptions {
	if h == nil {
		return nil
	}
	return &corev3.Http2ProtocolOptions{
		MaxConcurrentStreams:        u32(h.MaxConcurrentStreams),
		InitialStreamWindowSize:     u32(h.InitialStreamWindowSize),
		InitialConnectionWindowSize: u32(h.InitialConnectionWindowSize),
	}
}

// providerBreaker is a provider cluster's connections, pending and active
// requests when no circuit breaker sets them. Envoy's default of 1,024,
// sized for short calls, refused requests to a provider beyond 1,024
// answers in flight (streams last minutes) with a 503 no failover
// replaces, long before the host ran out of anything (the capacity probe,
// 2026-12-07); the ext_proc cluster in envoy/bootstrap.yaml has the same.
const providerBreaker = 100_000

// applyControls sets the provider's cluster controls on the cluster and
// its HTTP protocol options. Every unset control leaves Envoy's default.
func applyControls(cl *clusterv3.Cluster, opts *httpv3.HttpProtocolOptions, c Cluster) {
	ctl := c.Controls
	if ctl.DNSRefreshRate > 0 && !c.StaticIP {
		//lint:ignore SA1019 Envoy 1.40 still reads it for STRICT_DNS and LOGICAL_DNS clusters; its successor needs the cluster as a DNS extension
		cl.DnsRefreshRate = durationpb.New(ctl.DNSRefreshRate)
	}
	common := &corev3.HttpProtocolOptions{
		IdleTimeout:       dur(ctl.IdleTimeout),
		MaxStreamDuration: dur(ctl.PerTryTimeout),
	}
	if p := ctl.ConnectionPool; p != nil {
		common.MaxRequestsPerConnection = u32(p.MaxRequestsPerConnection)
		common.MaxConnectionDuration = dur(p.MaxConnectionDuration)
		cl.PerConnectionBufferLimitBytes = u32(p.PerConnectionBufferBytes)
	}
	if common.IdleTimeout != nil || common.MaxStreamDuration != nil || common.MaxRequestsPerConnection != nil || common.MaxConnectionDuration != nil {
		opts.CommonHttpProtocolOptions = common
	}
	var b config.CircuitBreakers
	if ctl.CircuitBreakers != nil {
		b = *ctl.CircuitBreakers
	}
	cl.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     u32(cmp.Or(b.MaxConnections, providerBreaker)),
		MaxPendingRequests: u32(cmp.Or(b.MaxPendingRequests, providerBreaker)),
		MaxRequests:        u32(cmp.Or(b.MaxRequests, providerBreaker)),
		MaxRetries:         u32(b.MaxRetries),
	}}}
	if o := ctl.OutlierDetection; o != nil {
		od := &clusterv3.OutlierDetection{
			Consecutive_5Xx:    u32(o.Consecutive5xx),
			Interval:           dur(o.Interval),
			BaseEjectionTime:   dur(o.BaseEjectionTime),
			MaxEjectionPercent: u32(o.MaxEjectionPercent),
		}
		if o.ConsecutiveGatewayErrors > 0 {
			// Envoy counts gateway errors but enforces none by default.
			od.ConsecutiveGatewayFailure = u32(o.ConsecutiveGatewayErrors)
			od.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(outlierEnforcingAlways)
		}
		cl.OutlierDetection = od
	}
	if h := ctl.HealthCheck; h != nil {
		cl.HealthChecks = []*corev3.HealthCheck{healthCheck(c, *h)}
	}
	if k := ctl.TCPKeepalive; k != nil {
		cl.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{TcpKeepalive: &corev3.TcpKeepalive{
			KeepaliveProbes:   u32(k.Probes),
			KeepaliveTime:     u32(uint32(k.Time / time.Second)),
			KeepaliveInterval: u32(uint32(k.Interval / time.Second)),
		}}
	}
}

// healthCheck asks every endpoint for the path, with the provider's host
// name, over the protocol the cluster speaks.
func healthCheck(c Cluster, h config.HealthCheck) *corev3.HealthCheck {
	or := func(d, def time.Duration) time.Duration {
		if d == 0 {
			return def
		}
		return d
	}
	orN := func(n, def uint32) uint32 {
		if n == 0 {
			return def
		}
		return n
	}
	http := &corev3.HealthCheck_HttpHealthCheck{Host: c.Host, Path: h.Path}
	if protocol(c) == "http2" {
		http.CodecClientType = typev3.CodecClientType_HTTP2
	}
	interval := durationpb.New(or(h.Interval, config.DefaultHealthInterval))
	return &corev3.HealthCheck{
		Timeout:  durationpb.New(or(h.Timeout, config.DefaultHealthTimeout)),
		Interval: interval,
		// A self-hosted replica is checked as often before its first
		// request as after (Envoy would wait a minute otherwise).
		NoTrafficInterval:  interval,
		HealthyThreshold:   wrapperspb.UInt32(orN(h.HealthyThreshold, config.DefaultHealthyThreshold)),
		UnhealthyThreshold: wrapperspb.UInt32(orN(h.UnhealthyThreshold, config.DefaultUnhealthyThreshold)),
		HealthChecker:      &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: http},
	}
}

// u32 is nil for 0: Envoy's default.
func u32(v uint32) *wrapperspb.UInt32Value {
	if v == 0 {
		return nil
	}
	return wrapperspb.UInt32(v)
}

// dur is nil for 0: Envoy's default.
func dur(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}
