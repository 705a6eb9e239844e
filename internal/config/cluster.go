package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ClusterSettings are the Envoy cluster controls SREs tune per provider:
// timeouts, circuit breakers, outlier detection, active health checks, the
// connection pool and HTTP/2, TCP keepalive, TLS and DNS. They are set in
// envoy.cluster_defaults and in each provider's cluster block; a provider's
// field that is set (not zero) wins over the default's, field by field, so
// a provider names only what differs. A zero everywhere leaves Envoy's own
// default. docs/config.md lists every field, docs/envoy.md how to tune them.
type ClusterSettings struct {
	// ConnectTimeout bounds TCP (and TLS) connection setup; unset, the
	// provider gets envoy.connect_timeout.
	ConnectTimeout time.Duration `yaml:"connect_timeout,omitempty" json:"connect_timeout,omitempty"`
	// PerTryTimeout bounds one upstream stream to the provider, from the
	// request to the last byte of its answer, streaming included (Envoy's
	// max_stream_duration on the cluster): set it above the longest answer.
	PerTryTimeout time.Duration `yaml:"per_try_timeout,omitempty" json:"per_try_timeout,omitempty"`
	// IdleTimeout closes an upstream connection without streams this long.
	IdleTimeout time.Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty"`
	// DNSRefreshRate is how often Envoy resolves a DNS provider's host.
	DNSRefreshRate time.Duration `yaml:"dns_refresh_rate,omitempty" json:"dns_refresh_rate,omitempty"`
	// Protocol is auto (HTTP/2 or HTTP/1.1 by ALPN; https only), http1 or
	// http2 (also in plain text, h2c). Unset: auto for https, http1 for http.
	Protocol         string            `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	CircuitBreakers  *CircuitBreakers  `yaml:"circuit_breakers,omitempty" json:"circuit_breakers,omitempty"`
	OutlierDetection *OutlierDetection `yaml:"outlier_detection,omitempty" json:"outlier_detection,omitempty"`
	HealthCheck      *HealthCheck      `yaml:"health_check,omitempty" json:"health_check,omitempty"`
	ConnectionPool   *ConnectionPool   `yaml:"connection_pool,omitempty" json:"connection_pool,omitempty"`
	HTTP2            *HTTP2Settings    `yaml:"http2,omitempty" json:"http2,omitempty"`
	TCPKeepalive     *TCPKeepalive     `yaml:"tcp_keepalive,omitempty" json:"tcp_keepalive,omitempty"`
	TLS              *ClusterTLS       `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// CircuitBreakers cap what Envoy sends one provider at once (Envoy's
// default priority thresholds); beyond them a request fails fast with 503,
// which Envoy does not retry (no failover), and the provider is not cooled.
type CircuitBreakers struct {
	MaxConnections     uint32 `yaml:"max_connections,omitempty" json:"max_connections,omitempty"`
	MaxPendingRequests uint32 `yaml:"max_pending_requests,omitempty" json:"max_pending_requests,omitempty"`
	MaxRequests        uint32 `yaml:"max_requests,omitempty" json:"max_requests,omitempty"`
	MaxRetries         uint32 `yaml:"max_retries,omitempty" json:"max_retries,omitempty"`
}

// OutlierDetection ejects an endpoint that keeps failing from the
// provider's load balancing for a while (passive health checking).
type OutlierDetection struct {
	// Consecutive5xx answers with a 5xx status (or no answer) eject.
	Consecutive5xx uint32 `yaml:"consecutive_5xx,omitempty" json:"consecutive_5xx,omitempty"`
	// ConsecutiveGatewayErrors: 502, 503, 504 or no answer.
	ConsecutiveGatewayErrors uint32        `yaml:"consecutive_gateway_errors,omitempty" json:"consecutive_gateway_errors,omitempty"`
	Interval                 time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	BaseEjectionTime         time.Duration `yaml:"base_ejection_time,omitempty" json:"base_ejection_time,omitempty"`
	// MaxEjectionPercent of the provider's endpoints may be out at once.
	MaxEjectionPercent uint32 `yaml:"max_ejection_percent,omitempty" json:"max_ejection_percent,omitempty"`
}

// HealthCheck is an active HTTP health check, for self-hosted providers
// (vLLM, TGI, Ollama): Envoy asks every endpoint for Path and takes one
// that fails out of load balancing until it passes again.
type HealthCheck struct {
	Path               string        `yaml:"path,omitempty" json:"path,omitempty"`
	Interval           time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	Timeout            time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	HealthyThreshold   uint32        `yaml:"healthy_threshold,omitempty" json:"healthy_threshold,omitempty"`
	UnhealthyThreshold uint32        `yaml:"unhealthy_threshold,omitempty" json:"unhealthy_threshold,omitempty"`
}

// ConnectionPool shapes Envoy's upstream connections to the provider.
type ConnectionPool struct {
	// MaxRequestsPerConnection recycles a connection after that many requests.
	MaxRequestsPerConnection uint32 `yaml:"max_requests_per_connection,omitempty" json:"max_requests_per_connection,omitempty"`
	// MaxConnectionDuration closes a connection this old once its streams end.
	MaxConnectionDuration time.Duration `yaml:"max_connection_duration,omitempty" json:"max_connection_duration,omitempty"`
	// PerConnectionBufferBytes is Envoy's per-connection buffer limit.
	PerConnectionBufferBytes uint32 `yaml:"per_connection_buffer_bytes,omitempty" json:"per_connection_buffer_bytes,omitempty"`
}

// HTTP2Settings apply wherever HTTP/2 is spoken to the provider.
type HTTP2Settings struct {
	MaxConcurrentStreams        uint32 `yaml:"max_concurrent_streams,omitempty" json:"max_concurrent_streams,omitempty"`
	InitialStreamWindowSize     uint32 `yaml:"initial_stream_window_size,omitempty" json:"initial_stream_window_size,omitempty"`
	InitialConnectionWindowSize uint32 `yaml:"initial_connection_window_size,omitempty" json:"initial_connection_window_size,omitempty"`
}

// TCPKeepalive probes idle upstream connections so a dead peer (a NAT or
// load balancer that dropped the flow) is noticed.
type TCPKeepalive struct {
	Probes   uint32        `yaml:"probes,omitempty" json:"probes,omitempty"`
	Time     time.Duration `yaml:"time,omitempty" json:"time,omitempty"`
	Interval time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
}

// ClusterTLS tunes TLS to an https provider.
type ClusterTLS struct {
	// SNI is the server name sent and verified (default: base_url's host).
	SNI string `yaml:"sni,omitempty" json:"sni,omitempty"`
	// CABundle replaces envoy.ca_bundle for this provider (an on-prem CA).
	CABundle string `yaml:"ca_bundle,omitempty" json:"ca_bundle,omitempty"`
	// MinVersion is 1.2 or 1.3 (default: Envoy's, 1.2).
	MinVersion string `yaml:"min_version,omitempty" json:"min_version,omitempty"`
	// ClientCertificate and ClientKey are PEM files Envoy presents (mTLS to
	// an on-prem provider); both or neither. Envoy reads them, not stellwerk.
	ClientCertificate string `yaml:"client_certificate,omitempty" json:"client_certificate,omitempty"`
	ClientKey         string `yaml:"client_key,omitempty" json:"client_key,omitempty"`
}

// Endpoint is one address of a provider with several (e.g. three vLLM
// replicas). base_url still gives the scheme, the host name for TLS and
// the Host header, and the API path; endpoints only say where Envoy
// connects.
type Endpoint struct {
	// Address is host:port, an IP or a DNS name.
	Address string `yaml:"address" json:"address"`
	// Weight for load balancing within its zone and priority (default 1).
	Weight uint32 `yaml:"weight,omitempty" json:"weight,omitempty"`
	// Zone groups endpoints into one Envoy locality (informational, and for
	// zone-aware load balancing).
	Zone string `yaml:"zone,omitempty" json:"zone,omitempty"`
	// Priority 0 is used first; 1 only when priority 0 is not healthy enough.
	Priority uint32 `yaml:"priority,omitempty" json:"priority,omitempty"`
}

// What a health check block leaves unset is, in Envoy: every 5 s, 1 s to
// answer, back after one pass, out after two failures.
const (
	DefaultHealthInterval     = 5 * time.Second
	DefaultHealthTimeout      = time.Second
	DefaultHealthyThreshold   = 1
	DefaultUnhealthyThreshold = 2
)

// Protocols are the values of a cluster's protocol.
var Protocols = []string{"auto", "http1", "http2"}

// TLSVersions are the values of tls.min_version.
var TLSVersions = []string{"1.2", "1.3"}

// Merge returns s with every field over has set replacing s's: over is a
// provider's own block, s the defaults (or an admin override over the file).
func (s ClusterSettings) Merge(over ClusterSettings) ClusterSettings {
	out := s
	pick(&out.ConnectTimeout, over.ConnectTimeout)
	pick(&out.PerTryTimeout, over.PerTryTimeout)
	pick(&out.IdleTimeout, over.IdleTimeout)
	pick(&out.DNSRefreshRate, over.DNSRefreshRate)
	pick(&out.Protocol, over.Protocol)
	out.CircuitBreakers = mergeBlock(s.CircuitBreakers, over.CircuitBreakers, func(o *CircuitBreakers, v CircuitBreakers) {
		pick(&o.MaxConnections, v.MaxConnections)
		pick(&o.MaxPendingRequests, v.MaxPendingRequests)
		pick(&o.MaxRequests, v.MaxRequests)
		pick(&o.MaxRetries, v.MaxRetries)
	})
	out.OutlierDetection = mergeBlock(s.OutlierDetection, over.OutlierDetection, func(o *OutlierDetection, v OutlierDetection) {
		pick(&o.Consecutive5xx, v.Consecutive5xx)
		pick(&o.ConsecutiveGatewayErrors, v.ConsecutiveGatewayErrors)
		pick(&o.Interval, v.Interval)
		pick(&o.BaseEjectionTime, v.BaseEjectionTime)
		pick(&o.MaxEjectionPercent, v.MaxEjectionPercent)
	})
	out.HealthCheck = mergeBlock(s.HealthCheck, over.HealthCheck, func(o *HealthCheck, v HealthCheck) {
		pick(&o.Path, v.Path)
		pick(&o.Interval, v.Interval)
		pick(&o.Timeout, v.Timeout)
		pick(&o.HealthyThreshold, v.HealthyThreshold)
		pick(&o.UnhealthyThreshold, v.UnhealthyThreshold)
	})
	out.ConnectionPool = mergeBlock(s.ConnectionPool, over.ConnectionPool, func(o *ConnectionPool, v ConnectionPool) {
		pick(&o.MaxRequestsPerConnection, v.MaxRequestsPerConnection)
		pick(&o.MaxConnectionDuration, v.MaxConnectionDuration)
		pick(&o.PerConnectionBufferBytes, v.PerConnectionBufferBytes)
	})
	out.HTTP2 = mergeBlock(s.HTTP2, over.HTTP2, func(o *HTTP2Settings, v HTTP2Settings) {
		pick(&o.MaxConcurrentStreams, v.MaxConcurrentStreams)
		pick(&o.InitialStreamWindowSize, v.InitialStreamWindowSize)
		pick(&o.InitialConnectionWindowSize, v.InitialConnectionWindowSize)
	})
	out.TCPKeepalive = mergeBlock(s.TCPKeepalive, over.TCPKeepalive, func(o *TCPKeepalive, v TCPKeepalive) {
		pick(&o.Probes, v.Probes)
		pick(&o.Time, v.Time)
		pick(&o.Interval, v.Interval)
	})
	out.TLS = mergeBlock(s.TLS, over.TLS, func(o *ClusterTLS, v ClusterTLS) {
		pick(&o.SNI, v.SNI)
		pick(&o.CABundle, v.CABundle)
		pick(&o.MinVersion, v.MinVersion)
		pick(&o.ClientCertificate, v.ClientCertificate)
		pick(&o.ClientKey, v.ClientKey)
	})
	return out
}

func pick[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// mergeBlock copies base (never aliasing it) and lays over's set fields on it.
func mergeBlock[T any](base, over *T, lay func(*T, T)) *T {
	if base == nil && over == nil {
		return nil
	}
	var out T
	if base != nil {
		out = *base
	}
	if over != nil {
		lay(&out, *over)
	}
	return &out
}

// Validate checks one cluster block; field is its path, e.g.
// "providers[2].cluster".
func (s ClusterSettings) Validate(field string) []error {
	var errs []error
	bad := func(f, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", field, f, fmt.Sprintf(format, args...)))
	}
	nonNeg := func(f string, d time.Duration) {
		if d < 0 {
			bad(f, "must not be negative, got %s", d)
		}
	}
	// Envoy wants at least a millisecond wherever it takes a duration.
	positive := func(f string, d time.Duration) {
		if d > 0 && d < time.Millisecond {
			bad(f, "must be at least 1ms, got %s", d)
		}
	}
	for f, d := range map[string]time.Duration{"connect_timeout": s.ConnectTimeout, "per_try_timeout": s.PerTryTimeout,
		"idle_timeout": s.IdleTimeout, "dns_refresh_rate": s.DNSRefreshRate} {
		nonNeg(f, d)
		positive(f, d)
	}
	if s.Protocol != "" && !slices.Contains(Protocols, s.Protocol) {
		bad("protocol", "%q is not one of %s", s.Protocol, strings.Join(Protocols, ", "))
	}
	if o := s.OutlierDetection; o != nil {
		for f, d := range map[string]time.Duration{"interval": o.Interval, "base_ejection_time": o.BaseEjectionTime} {
			nonNeg("outlier_detection."+f, d)
			positive("outlier_detection."+f, d)
		}
		if o.MaxEjectionPercent > 100 {
			bad("outlier_detection.max_ejection_percent", "must be between 0 and 100, got %d", o.MaxEjectionPercent)
		}
	}
	if h := s.HealthCheck; h != nil {
		if h.Path != "" && (!strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \r\n\x00")) {
			bad("health_check.path", "must be an absolute path such as /health, got %q", h.Path)
		}
		for f, d := range map[string]time.Duration{"interval": h.Interval, "timeout": h.Timeout} {
			nonNeg("health_check."+f, d)
			positive("health_check."+f, d)
		}
		if h.Interval > 0 && h.Timeout > h.Interval {
			bad("health_check.timeout", "must not be longer than health_check.interval (%s)", h.Interval)
		}
	}
	if p := s.ConnectionPool; p != nil {
		nonNeg("connection_pool.max_connection_duration", p.MaxConnectionDuration)
		positive("connection_pool.max_connection_duration", p.MaxConnectionDuration)
	}
	if h := s.HTTP2; h != nil {
		// Envoy's own bounds for these settings.
		if v := h.MaxConcurrentStreams; v > 2147483647 {
			bad("http2.max_concurrent_streams", "must be at most 2147483647")
		}
		for f, v := range map[string]uint32{"initial_stream_window_size": h.InitialStreamWindowSize,
			"initial_connection_window_size": h.InitialConnectionWindowSize} {
			if v != 0 && (v < 65535 || v > 2147483647) {
				bad("http2."+f, "must be between 65535 and 2147483647, got %d", v)
			}
		}
	}
	if k := s.TCPKeepalive; k != nil {
		for f, d := range map[string]time.Duration{"time": k.Time, "interval": k.Interval} {
			nonNeg("tcp_keepalive."+f, d)
			if d != 0 && d%time.Second != 0 {
				bad("tcp_keepalive."+f, "must be whole seconds, got %s", d)
			}
			// Linux's TCP_KEEPIDLE and TCP_KEEPINTVL: Envoy set more, was
			// refused, and every connection to the provider failed (the
			// config probe).
			if d > 32767*time.Second {
				bad("tcp_keepalive."+f, "must be at most 32767s (Linux's limit), got %s", d)
			}
		}
		if k.Probes > 127 { // TCP_KEEPCNT
			bad("tcp_keepalive.probes", "must be at most 127 (Linux's limit), got %d", k.Probes)
		}
	}
	if t := s.TLS; t != nil {
		if t.MinVersion != "" && !slices.Contains(TLSVersions, t.MinVersion) {
			bad("tls.min_version", "%q is not one of %s", t.MinVersion, strings.Join(TLSVersions, ", "))
		}
		if (t.ClientCertificate == "") != (t.ClientKey == "") {
			bad("tls.client_certificate", "client_certificate and client_key go together")
		}
		if t.SNI != "" && (strings.ContainsAny(t.SNI, " /:\r\n\x00") || net.ParseIP(t.SNI) != nil) {
			bad("tls.sni", "%q is not a host name", t.SNI)
		}
	}
	return errs
}

// validateEndpoints checks a provider's endpoints; field is e.g. "providers[1]".
func validateEndpoints(field string, eps []Endpoint) []error {
	var errs []error
	seen := map[string]bool{}
	for i, e := range eps {
		f := fmt.Sprintf("%s.endpoints[%d]", field, i)
		host, port, err := net.SplitHostPort(e.Address)
		if err == nil && host == "" {
			err = fmt.Errorf("missing host")
		}
		if err == nil {
			if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
				err = fmt.Errorf("bad port %q", port)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.address: %q is not host:port: %v", f, e.Address, err))
		} else if seen[e.Address] {
			errs = append(errs, fmt.Errorf("%s.address: duplicate endpoint %q", f, e.Address))
		}
		seen[e.Address] = true
		if e.Weight > 128 {
			errs = append(errs, fmt.Errorf("%s.weight: must be between 1 and 128, got %d", f, e.Weight))
		}
		if e.Priority > 8 {
			errs = append(errs, fmt.Errorf("%s.priority: must be between 0 and 8, got %d", f, e.Priority))
		}
	}
	return errs
}

// EffectiveCluster is the provider's cluster settings as Envoy gets them:
// envoy.cluster_defaults, then the provider's own block, with
// envoy.connect_timeout and envoy.ca_bundle where neither sets those.
func (c *Config) EffectiveCluster(p Provider) ClusterSettings {
	base := ClusterSettings{ConnectTimeout: c.Envoy.ConnectTimeout}
	s := base.Merge(c.Envoy.ClusterDefaults)
	if p.Cluster != nil {
		s = s.Merge(*p.Cluster)
	}
	return s
}

// clusterErrors validates the defaults and every provider's block and endpoints.
func (c *Config) clusterErrors() []error {
	errs := c.Envoy.ClusterDefaults.Validate("envoy.cluster_defaults")
	for i, p := range c.Providers {
		f := fmt.Sprintf("providers[%d]", i)
		if p.Cluster != nil {
			errs = append(errs, p.Cluster.Validate(f+".cluster")...)
		}
		errs = append(errs, validateEndpoints(f, p.Endpoints)...)
		eff := c.EffectiveCluster(p)
		if eff.Protocol == "auto" && strings.HasPrefix(p.BaseURL, "http://") {
			errs = append(errs, fmt.Errorf("%s.cluster.protocol: auto needs an https base_url (ALPN); use http1 or http2", f))
		}
		// A health check merged from the defaults and the provider's block
		// needs a path from one of them.
		if h := eff.HealthCheck; h != nil && h.Path == "" {
			errs = append(errs, fmt.Errorf("%s.cluster.health_check.path: required (here or in envoy.cluster_defaults.health_check)", f))
		}
		if h := eff.HealthCheck; h != nil && !bothSet(p.Cluster) {
			interval := h.Interval
			if interval == 0 {
				interval = DefaultHealthInterval
			}
			if h.Timeout > interval {
				errs = append(errs, fmt.Errorf("%s.cluster.health_check.timeout: must not be longer than health_check.interval (%s)", f, interval))
			}
		}
		// envoy.cluster_defaults.tls applies to the https providers only.
		if p.Cluster != nil && p.Cluster.TLS != nil && strings.HasPrefix(p.BaseURL, "http://") {
			errs = append(errs, fmt.Errorf("%s.cluster.tls: set for a plain http base_url", f))
		}
		// Likewise the HTTP/2 settings: a provider that speaks HTTP/1.1
		// would take them and do nothing with them.
		if p.Cluster != nil && p.Cluster.HTTP2 != nil && strings.HasPrefix(p.BaseURL, "http://") && eff.Protocol != "http2" {
			errs = append(errs, fmt.Errorf("%s.cluster.http2: set for a provider that speaks HTTP/1.1 (a plain http base_url); set protocol: http2 for HTTP/2 in plain text", f))
		}
	}
	return errs
}

// bothSet reports whether a provider's own health check sets both timeout
// and interval: its block's validation has compared them already.
func bothSet(s *ClusterSettings) bool {
	return s != nil && s.HealthCheck != nil && s.HealthCheck.Timeout > 0 && s.HealthCheck.Interval > 0
}
