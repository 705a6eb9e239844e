// Package xds turns stellwerk's config into Envoy resources and serves them
// over ADS. Config → IR → resources, each step a pure function; one writer
// owns the snapshot cache.
package xds

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
)

// IR is the small, plain-data description of what Envoy must run.
type IR struct {
	// Listener is nil in clusters mode: the operator's Envoy owns its
	// listener and routes, stellwerk pushes provider clusters only.
	Listener *Listener `json:"listener,omitempty"`
	ExtProc  ExtProc   `json:"ext_proc"`
	Clusters []Cluster `json:"clusters"`
	// RequestTimeout bounds an upstream request, streaming included; 0 disables.
	RequestTimeout time.Duration `json:"request_timeout"`
	// Failover is set in standalone mode with failover.max_attempts > 1:
	// requests go through the failover cluster, whose endpoints are one
	// internal egress listener per provider. Without it each request goes
	// straight to its provider's cluster.
	Failover *Failover `json:"failover,omitempty"`
	// Secrets are the providers' credentials, pushed to Envoy over ADS
	// (SDS) and injected by each provider's cluster: they never travel in an
	// ext_proc answer. Their values are never rendered.
	Secrets []Secret `json:"secrets,omitempty"`
}

// Secret is one provider credential: the whole header value Envoy sends.
type Secret struct {
	Name  string `json:"name"`
	Value string `json:"-"`
}

// Credential is how a provider's cluster authenticates: Envoy sets Header
// to the value of the secret named Secret on every request it sends there,
// replacing whatever the request carried.
type Credential struct {
	Header string `json:"header"`
	Secret string `json:"secret"`
}

// Failover is the cross-provider retry set-up (docs/failover.md).
type Failover struct {
	MaxAttempts    int           `json:"max_attempts"`
	AttemptTimeout time.Duration `json:"attempt_timeout"`
	// MaxRequestBytes sizes the buffers a retried request is kept in.
	MaxRequestBytes int64    `json:"max_request_bytes"`
	Egress          []Egress `json:"egress"`
	// First are the providers' first-attempt clusters, for JSON requests
	// whose first attempt the client-facing filter rewrote: that attempt
	// goes from the client-facing router straight to the provider's
	// cluster, the retries through the failover cluster (docs/failover.md).
	First []FirstAttempt `json:"first,omitempty"`
}

// FirstAttempt is one provider's first-attempt cluster.
type FirstAttempt struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// Cluster is the provider's cluster, where the first attempt goes: its
	// credential is the first-attempt cluster's too (an aggregate
	// cluster's upstream filters are its own, not its members').
	Cluster Cluster `json:"cluster"`
}

// Egress is one provider's internal listener: it runs stellwerk's per-attempt
// rewrite, then forwards to the provider's cluster.
type Egress struct {
	Listener string `json:"listener"`
	Provider string `json:"provider"`
	Cluster  string `json:"cluster"`
	// FirstByte are the distinct first-byte timeouts of the provider's
	// models, shortest first: a route each for a first attempt the
	// client-facing filter rewrote (header.FirstByte).
	FirstByte []time.Duration `json:"first_byte,omitempty"`
}

// WorkspaceKey is a workspace's own key for a provider (bring your own
// key): the provider's cluster is copied with this credential.
type WorkspaceKey struct {
	Workspace, Provider string
	Key                 string `json:"-"`
}

// Listener is the client-facing listener.
type Listener struct {
	Name            string `json:"name"`
	Address         string `json:"address"`
	Port            uint32 `json:"port"`
	MaxRequestBytes int64  `json:"max_request_bytes"`
	AccessLog       bool   `json:"access_log"`
	// CORSAllowOrigins are the origins whose browser apps may call the
	// listener (envoy.cors.allow_origins); none: no CORS filter.
	CORSAllowOrigins []string `json:"cors_allow_origins,omitempty"`
}

// ExtProc is how Envoy reaches stellwerk's ext_proc service.
type ExtProc struct {
	Cluster string        `json:"cluster"`
	Timeout time.Duration `json:"timeout"`
	// Egress names the provider of an egress listener's filter ("" for the
	// client-facing filter).
	Egress string `json:"egress,omitempty"`
}

// Cluster is one provider.
type Cluster struct {
	Name           string        `json:"name"`
	Host           string        `json:"host"`
	Port           uint32        `json:"port"`
	TLS            bool          `json:"tls"`
	StaticIP       bool          `json:"static_ip"`
	ConnectTimeout time.Duration `json:"connect_timeout"`
	CABundle       string        `json:"ca_bundle,omitempty"`
	// Credential is nil for a provider without authentication and for one
	// whose key is missing (stellwerk then refuses to send requests there).
	Credential *Credential `json:"credential,omitempty"`
	// SNI is the TLS server name sent and verified (https only).
	SNI string `json:"sni,omitempty"`
	// Endpoints are where Envoy connects; empty means Host:Port.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// Controls are the provider's cluster controls, defaults merged in
	// (config.ClusterSettings); ConnectTimeout and CABundle above win over
	// the ones in it.
	Controls config.ClusterSettings `json:"controls"`
	// DropIn (clusters mode): the request carries the provider's host in
	// header.Host, which the operator's route reads for the Host header
	// and cannot remove before it does; the cluster removes it.
	DropIn bool `json:"drop_in,omitempty"`
}

// Endpoint is one of a provider's addresses.
type Endpoint struct {
	Host     string `json:"host"`
	Port     uint32 `json:"port"`
	Weight   uint32 `json:"weight,omitempty"`
	Zone     string `json:"zone,omitempty"`
	Priority uint32 `json:"priority,omitempty"`
}

// Names of the resources stellwerk owns.
const (
	ListenerName    = "stellwerk_http"
	RouteConfigName = "stellwerk_routes"
)

// FromConfig builds the IR from a validated config and its catalog, and
// the workspaces' own provider keys (keys for unknown providers are
// skipped).
func FromConfig(c *config.Config, cat *catalog.Catalog, wks ...WorkspaceKey) (IR, error) {
	host, portS, err := net.SplitHostPort(c.Envoy.Listener)
	if err != nil {
		return IR{}, fmt.Errorf("envoy.listener: %w", err)
	}
	port, err := strconv.ParseUint(portS, 10, 16)
	if err != nil {
		return IR{}, fmt.Errorf("envoy.listener: bad port %q", portS)
	}
	ir := IR{
		ExtProc:        ExtProc{Cluster: c.Envoy.ExtProcCluster, Timeout: c.Envoy.ExtProcTimeout},
		RequestTimeout: c.Envoy.RequestTimeout,
	}
	if c.Envoy.Mode == config.ModeStandalone {
		ir.Listener = &Listener{Name: ListenerName, Address: host, Port: uint32(port),
			MaxRequestBytes: c.Envoy.MaxRequestBytes, AccessLog: c.Envoy.AccessLog, CORSAllowOrigins: c.Envoy.CORS.AllowOrigins}
	}
	provCfg := make(map[string]config.Provider, len(c.Providers))
	for _, pc := range c.Providers {
		provCfg[pc.Name] = pc
	}
	for _, p := range cat.Providers() {
		pc := provCfg[p.Name]
		ctl := c.EffectiveCluster(pc)
		cl := Cluster{Name: p.Cluster, Host: p.Host, Port: uint32(p.Port), TLS: p.TLS(), StaticIP: p.IsIP(),
			ConnectTimeout: ctl.ConnectTimeout, Controls: ctl, DropIn: c.Envoy.Mode == config.ModeClusters}
		if cl.TLS {
			cl.CABundle, cl.SNI = c.Envoy.CABundle, p.Host
			if t := ctl.TLS; t != nil && t.CABundle != "" {
				cl.CABundle = t.CABundle
			}
			if t := ctl.TLS; t != nil && t.SNI != "" {
				cl.SNI = t.SNI
			}
		}
		if err := cl.setEndpoints(pc.Endpoints); err != nil {
			return IR{}, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		if name, value, ok := p.Credential(); ok && name != "" {
			sec := header.CredentialSecret(p.Name)
			cl.Credential = &Credential{Header: name, Secret: sec}
			ir.Secrets = append(ir.Secrets, Secret{Name: sec, Value: value})
		}
		ir.Clusters = append(ir.Clusters, cl)
		for _, wk := range wks {
			if wk.Provider != p.Name || wk.Key == "" {
				continue
			}
			wc := cl
			wc.Name = header.WorkspaceCluster(p.Cluster, wk.Workspace)
			name, value := p.FormatCredential(wk.Key)
			sec := header.WorkspaceCredentialSecret(p.Name, wk.Workspace)
			wc.Credential = &Credential{Header: name, Secret: sec}
			ir.Secrets = append(ir.Secrets, Secret{Name: sec, Value: value})
			ir.Clusters = append(ir.Clusters, wc)
		}
	}
	if ir.Listener != nil && c.Failover.MaxAttempts > 1 {
		f := &Failover{MaxAttempts: c.Failover.MaxAttempts, AttemptTimeout: c.Failover.AttemptTimeout,
			MaxRequestBytes: c.Envoy.MaxRequestBytes}
		for _, p := range cat.Providers() {
			e := Egress{Listener: header.EgressListener(p.Name), Provider: p.Name, Cluster: p.Cluster}
			for _, m := range cat.Models() {
				if m.Provider == p && m.FirstByteTimeout > 0 && !slices.Contains(e.FirstByte, m.FirstByteTimeout) {
					e.FirstByte = append(e.FirstByte, m.FirstByteTimeout)
				}
			}
			slices.Sort(e.FirstByte)
			f.Egress = append(f.Egress, e)
		}
		for _, p := range cat.Providers() {
			i := slices.IndexFunc(ir.Clusters, func(c Cluster) bool { return c.Name == p.Cluster })
			if i < 0 || !steadyFirst(ir.Clusters[i]) {
				continue
			}
			f.First = append(f.First, FirstAttempt{Name: header.FirstCluster(p.Name), Provider: p.Name, Cluster: ir.Clusters[i]})
		}
		ir.Failover = f
	}
	return ir, ir.Validate()
}

// steadyFirst reports whether a provider's cluster can be a first-attempt
// cluster's first priority: one that never hands its load to the next
// (the retries' failover clusters, whose requests would lack the plan).
// Endpoints with priorities of their own, active health checks and
// outlier detection can all leave it without a healthy host; such a
// provider's first attempts keep the failover cluster.
func steadyFirst(c Cluster) bool {
	if c.Controls.HealthCheck != nil || c.Controls.OutlierDetection != nil {
		return false
	}
	return !slices.ContainsFunc(c.endpoints(), func(e Endpoint) bool { return e.Priority != 0 })
}

// Validate checks the IR on its own, so hand-built IRs in tests get the same
// guarantees as config-built ones.
func (ir IR) Validate() error {
	var errs []error
	if ir.Listener != nil && net.ParseIP(ir.Listener.Address) == nil {
		errs = append(errs, fmt.Errorf("listener address %q is not an IP", ir.Listener.Address))
	}
	if ir.Listener != nil && slices.Contains(ir.Listener.CORSAllowOrigins, "") {
		errs = append(errs, errors.New("listener: an empty CORS origin"))
	}
	if ir.ExtProc.Cluster == "" {
		errs = append(errs, errors.New("ext_proc cluster is empty"))
	}
	secrets := map[string]bool{}
	for _, s := range ir.Secrets {
		if s.Name == "" || s.Value == "" || secrets[s.Name] {
			errs = append(errs, fmt.Errorf("secret %q: empty or duplicate", s.Name))
		}
		secrets[s.Name] = true
	}
	seen := map[string]bool{}
	for _, c := range ir.Clusters {
		if cr := c.Credential; cr != nil && (cr.Header == "" || !secrets[cr.Secret]) {
			errs = append(errs, fmt.Errorf("cluster %q: credential needs a header and a known secret", c.Name))
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("duplicate cluster %q", c.Name))
		}
		seen[c.Name] = true
		if c.Port == 0 || c.Port > 65535 {
			errs = append(errs, fmt.Errorf("cluster %q: bad port %d", c.Name, c.Port))
		}
		if c.TLS && (c.sni() == "" || net.ParseIP(c.sni()) != nil) {
			errs = append(errs, fmt.Errorf("cluster %q: https needs a host name for SNI, not an IP", c.Name))
		}
		for _, e := range c.Endpoints {
			if e.Host == "" || e.Port == 0 {
				errs = append(errs, fmt.Errorf("cluster %q: bad endpoint %s:%d", c.Name, e.Host, e.Port))
			}
		}
	}
	return errors.Join(errs...)
}

// setEndpoints takes a provider's configured endpoints; a cluster whose
// every endpoint is an IP is static, one with a host name among them
// resolves them all by DNS.
func (c *Cluster) setEndpoints(eps []config.Endpoint) error {
	if len(eps) == 0 {
		return nil
	}
	c.Endpoints = make([]Endpoint, 0, len(eps))
	c.StaticIP = true
	for _, e := range eps {
		host, portS, err := net.SplitHostPort(e.Address)
		if err != nil {
			return fmt.Errorf("endpoint %q: %w", e.Address, err)
		}
		port, err := strconv.ParseUint(portS, 10, 16)
		if err != nil {
			return fmt.Errorf("endpoint %q: bad port", e.Address)
		}
		if net.ParseIP(host) == nil {
			c.StaticIP = false
		}
		c.Endpoints = append(c.Endpoints, Endpoint{Host: host, Port: uint32(port), Weight: e.Weight, Zone: e.Zone, Priority: e.Priority})
	}
	return nil
}

// sni is the name TLS sends and verifies: the configured one, or the host.
func (c Cluster) sni() string {
	if c.SNI != "" {
		return c.SNI
	}
	return c.Host
}

// endpoints is where Envoy connects: the configured endpoints, or Host:Port.
func (c Cluster) endpoints() []Endpoint {
	if len(c.Endpoints) > 0 {
		return c.Endpoints
	}
	return []Endpoint{{Host: c.Host, Port: c.Port}}
}
