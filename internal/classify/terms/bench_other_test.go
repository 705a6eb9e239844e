//go:build !linux

package terms

// threadCPU is not measured outside Linux (cpu-ns/op reads 0).
func threadCPU() int64 { return 0 }
