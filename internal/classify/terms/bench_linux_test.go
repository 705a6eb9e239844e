package terms

import "syscall"

// threadCPU is the CPU time this thread has used, in ns: unlike ns/op it
// does not grow while the thread waits for a core on a busy machine.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
