package xds

import (
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	credinjv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/credential_injector/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	codecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	genericv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/injected_credentials/generic/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/stellwerk/stellwerk/internal/header"
)

// Provider credentials are Envoy's, not the ext_proc answer's: each one is an
// SDS secret pushed over ADS, and the provider's cluster runs the
// credential_injector filter as an upstream HTTP filter, so every request
// Envoy sends to that cluster carries the provider's key, and no other
// cluster's. Whoever reaches the ext_proc port gets routing answers, never a
// key (docs/security.md).

// credentialSecret is one provider's credential as a generic secret.
func credentialSecret(s Secret) *tlsv3.Secret {
	return &tlsv3.Secret{Name: s.Name, Type: &tlsv3.Secret_GenericSecret{GenericSecret: &tlsv3.GenericSecret{
		Secret: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s.Value}},
	}}}
}

// upstreamFilters are a provider cluster's upstream HTTP filters: the
// credential (c, nil for none), header.Host removed in an operator's Envoy
// (dropIn), then the codec every upstream filter chain ends with.
func upstreamFilters(c *Credential, dropIn bool) ([]*hcmv3.HttpFilter, error) {
	var fs []*hcmv3.HttpFilter
	if c != nil {
		gen, err := toAny(&genericv3.Generic{
			Credential: &tlsv3.SdsSecretConfig{Name: c.Secret, SdsConfig: adsConfigSource()},
			Header:     c.Header,
		})
		if err != nil {
			return nil, err
		}
		inj, err := toAny(&credinjv3.CredentialInjector{
			// Whatever a request carries is replaced (stellwerk also strips the
			// client's credentials at the edge).
			Overwrite:  true,
			Credential: &corev3.TypedExtensionConfig{Name: "envoy.http.injected_credentials.generic", TypedConfig: gen},
		})
		if err != nil {
			return nil, err
		}
		fs = append(fs, &hcmv3.HttpFilter{Name: "envoy.filters.http.credential_injector", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: inj}})
	}
	if dropIn {
		hm, err := toAny(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{RequestMutations: []*mutationv3.HeaderMutation{
			{Action: &mutationv3.HeaderMutation_Remove{Remove: header.Host}},
		}}})
		if err != nil {
			return nil, err
		}
		fs = append(fs, &hcmv3.HttpFilter{Name: "stellwerk_host_header", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: hm}})
	}
	codec, err := toAny(&codecv3.UpstreamCodec{})
	if err != nil {
		return nil, err
	}
	return append(fs, &hcmv3.HttpFilter{Name: "envoy.filters.http.upstream_codec", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: codec}}), nil
}
