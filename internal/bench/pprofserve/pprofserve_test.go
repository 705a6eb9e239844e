package pprofserve

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteTrace: --trace writes an execution trace `go tool trace` reads
// (its header), and a stop before the duration ends it at once.
func TestWriteTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.out")
	if err := writeTrace(context.Background(), path, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("go 1.")) || !bytes.Contains(b[:16], []byte(" trace\x00")) {
		t.Fatalf("not an execution trace: %q", b[:min(len(b), 16)])
	}

	// A stopped server: were the hour waited for, the test would time out.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := writeTrace(ctx, filepath.Join(t.TempDir(), "trace.out"), time.Hour); err != nil {
		t.Fatal(err)
	}
}
