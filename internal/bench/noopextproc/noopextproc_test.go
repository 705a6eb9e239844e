package noopextproc

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestContinueToEveryMessage: each phase Envoy may send gets its own kind
// of answer (Envoy rejects a mismatched one), with no mutation and CONTINUE.
func TestContinueToEveryMessage(t *testing.T) {
	for _, name := range Transports {
		t.Run(name, func(t *testing.T) { testContinueToEveryMessage(t, servers[name]) })
	}
}

func testContinueToEveryMessage(t *testing.T, serve func(context.Context, net.Listener) error) {
	sock := filepath.Join(t.TempDir(), "n.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- serve(ctx, l) }()

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hdrs := &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{}}
	body := &extprocv3.HttpBody{Body: []byte(`{"model":"auto"}`), EndOfStream: true}
	for name, tc := range map[string]struct {
		req   *extprocv3.ProcessingRequest
		check func(*extprocv3.ProcessingResponse) (kindOK bool, c *extprocv3.CommonResponse)
	}{
		"request headers": {&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: hdrs}},
			func(r *extprocv3.ProcessingResponse) (bool, *extprocv3.CommonResponse) {
				return r.GetRequestHeaders() != nil, r.GetRequestHeaders().GetResponse()
			}},
		"request body": {&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: body}},
			func(r *extprocv3.ProcessingResponse) (bool, *extprocv3.CommonResponse) {
				return r.GetRequestBody() != nil, r.GetRequestBody().GetResponse()
			}},
		"response headers": {&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: hdrs}},
			func(r *extprocv3.ProcessingResponse) (bool, *extprocv3.CommonResponse) {
				return r.GetResponseHeaders() != nil, r.GetResponseHeaders().GetResponse()
			}},
		"response body": {&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: body}},
			func(r *extprocv3.ProcessingResponse) (bool, *extprocv3.CommonResponse) {
				return r.GetResponseBody() != nil, r.GetResponseBody().GetResponse()
			}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := stream.Send(tc.req); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			kindOK, common := tc.check(resp)
			if !kindOK {
				t.Fatalf("answer %v is not for this phase", resp)
			}
			if common.GetStatus() != extprocv3.CommonResponse_CONTINUE || common.GetHeaderMutation() != nil || common.GetBodyMutation() != nil {
				t.Errorf("answer %v; want CONTINUE without mutations", resp)
			}
		})
	}
	_ = stream.CloseSend()
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
