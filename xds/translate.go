package xds

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/stellwerk/stellwerk/internal/header"
)

// Resources is everything stellwerk pushes to Envoy.
type Resources struct {
	Clusters  []*clusterv3.Cluster
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Secrets   []*tlsv3.Secret
}

// validator is what every generated Envoy proto offers (protoc-gen-validate).
type validator interface{ ValidateAll() error }

// Translate turns the IR into validated Envoy resources. It does no I/O and
// reports every error it finds.
func Translate(ir IR) (Resources, error) {
	if err := ir.Validate(); err != nil {
		return Resources{}, err
	}
	var res Resources
	var errs []error
	check := func(what string, v validator) {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	for _, s := range ir.Secrets {
		sec := credentialSecret(s)
		check("secret "+s.Name, sec)
		res.Secrets = append(res.Secrets, sec)
	}
	for _, c := range ir.Clusters {
		cl, err := providerCluster(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", c.Name, err))
			continue
		}
		check("cluster "+c.Name, cl)
		res.Clusters = append(res.Clusters, cl)
	}
	if ir.Listener != nil {
		l, err := httpListener(ir)
		if err != nil {
			errs = append(errs, fmt.Errorf("listener: %w", err))
		} else {
			check("listener "+l.Name, l)
			res.Listeners = append(res.Listeners, l)
		}
		if f := ir.Failover; f != nil {
			cl, err := failoverCluster(*f)
			if err != nil {
				errs = append(errs, fmt.Errorf("cluster %s: %w", header.FailoverCluster, err))
			} else {
				check("cluster "+header.FailoverCluster, cl)
				res.Clusters = append(res.Clusters, cl)
			}
			for n := 2; len(f.First) > 0 && n <= f.MaxAttempts; n++ {
				name := header.FailoverAttempt(n)
				cl, err := attemptCluster(*f, n)
				if err != nil {
					errs = append(errs, fmt.Errorf("cluster %s: %w", name, err))
					continue
				}
				check("cluster "+name, cl)
				res.Clusters = append(res.Clusters, cl)
			}
			for _, fa := range f.First {
				cl, err := firstAttemptCluster(*f, fa)
				if err != nil {
					errs = append(errs, fmt.Errorf("cluster %s: %w", fa.Name, err))
					continue
				}
				check("cluster "+fa.Name, cl)
				res.Clusters = append(res.Clusters, cl)
			}
			for _, e := range ir.Failover.Egress {
				l, err := egressListener(ir, e)
				if err != nil {
					errs = append(errs, fmt.Errorf("listener %s: %w", e.Listener, err))
					continue
				}
				check("listener "+l.Name, l)
				res.Listeners = append(res.Listeners, l)
			}
		}
		if rc, err := routeConfig(ir); err != nil {
			errs = append(errs, fmt.Errorf("route configuration: %w", err))
		} else {
			check("route configuration "+rc.Name, rc)
			res.Routes = append(res.Routes, rc)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Resources{}, err
	}
	return res, nil
}
