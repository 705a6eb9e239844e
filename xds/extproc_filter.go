package xds

import (
	"time"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/stellwerk/stellwerk/internal/header"
)

// ExtProcFilterName is the HTTP filter name of stellwerk in Envoy.
const ExtProcFilterName = "envoy.filters.http.ext_proc"

// extProcConfig is the ext_proc filter: headers and the buffered request body
// go to stellwerk; response headers too, so every answer carries the
// decision headers. The response body is not sent by default, so streams
// pass through chunk by chunk; stellwerk overrides that per response for
// successful JSON answers (BUFFERED_PARTIAL), to add the routing object. If stellwerk cannot be reached the request fails closed.
func extProcConfig(ep ExtProc) *extprocv3.ExternalProcessor {
	gs := &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ep.Cluster}},
	}
	var mo *extprocv3.MetadataOptions
	if ep.Egress != "" {
		// One attempt on one provider: the stream says which.
		gs.InitialMetadata = []*corev3.HeaderValue{{Key: header.Egress, Value: ep.Egress}}
	} else {
		// The decision's attempt list, for the failover clusters' balancers
		// (subset criteria in Envoy's own namespace for the first-attempt
		// clusters').
		mo = &extprocv3.MetadataOptions{ReceivingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{header.MetadataNamespace, header.LBNamespace}}}
	}
	c := &extprocv3.ExternalProcessor{
		MetadataOptions:  mo,
		GrpcService:      gs,
		FailureModeAllow: false,
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		MessageTimeout: durationpb.New(ep.Timeout),
		// stellwerk rewrites :authority for the provider.
		// It also sets x-envoy-max-retries: the attempts a request's plan has.
		MutationRules: &mutationv3.HeaderMutationRules{AllowAllRouting: wrapperspb.Bool(true), AllowEnvoy: wrapperspb.Bool(true)},
		// stellwerk sets content-length to the exact length of the body it
		// wrote, so providers that reject chunked uploads still work.
		AllowContentLengthHeader: true,
		RouteCacheAction:         extprocv3.ExternalProcessor_DEFAULT,
		// stellwerk asks for the body of non-streaming JSON answers only, to
		// add the routing object; streams are never buffered.
		AllowModeOverride: true,
	}
	if ep.Egress == "" {
		pipelinedMode(c)
	}
	return c
}

// pipelinedMode is the client-facing filter's mode: both bodies STREAMED
// and sent without waiting for the headers' answer, so a request costs
// one round trip each way (extproc/pipeline.go). Envoy ignores mode
// overrides then; stellwerk holds and releases chunks itself. The upload
// of a large body may take longer than the message timeout: stellwerk
// extends it for that message, up to MaxMessageTimeout.
func pipelinedMode(c *extprocv3.ExternalProcessor) {
	c.ProcessingMode = &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		RequestBodyMode:     extprocv3.ProcessingMode_STREAMED,
		RequestTrailerMode:  extprocv3.ProcessingMode_SEND, // an HTTP/2 client's trailers end the body (pipeline.go)
		ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
		ResponseBodyMode:    extprocv3.ProcessingMode_STREAMED,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
	c.SendBodyWithoutWaitingForHeaderResponse = true
	c.AllowModeOverride = false
	c.MaxMessageTimeout = durationpb.New(2 * time.Minute)
}

func extProcHTTPFilter(ep ExtProc) (*hcmv3.HttpFilter, error) {
	a, err := toAny(extProcConfig(ep))
	if err != nil {
		return nil, err
	}
	return &hcmv3.HttpFilter{Name: ExtProcFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}, nil
}
