package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a child the bench started. It runs in its own process group, so
// stopping it stops whatever it spawned, and the kernel kills it if the bench
// dies without cleaning up (Pdeathsig), as internal/harness does.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func startProcess(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process itself (not its group).
func (p *process) signal(sig syscall.Signal) error { return syscall.Kill(p.pid(), sig) }

// stop asks the process group to end and kills it after grace.
func (p *process) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// logTail is the end of what the process printed, for error messages.
func (p *process) logTail(max int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > max {
		b = append([]byte("…"), b[len(b)-max:]...)
	}
	return string(b)
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; it
// is 100 on every Linux architecture Go supports for this.
const clockTicks = 100

// cpuSeconds is the user plus system CPU time the process has used so far.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	return float64(ut+st) / clockTicks, nil
}

// contextSwitches is how often the process's threads have gone off a CPU
// so far, voluntarily (a thread parking: a Go runtime with nothing to do)
// or not: the sum of voluntary_ctxt_switches and nonvoluntary_ctxt_switches
// over /proc/<pid>/task. A thread that exits takes its count with it; the
// Go runtime keeps its threads.
func contextSwitches(pid int) (int64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/status")
		if err != nil {
			continue // the thread has just exited
		}
		n += parseCtxtSwitches(b)
	}
	return n, nil
}

// parseCtxtSwitches adds up a /proc status file's context switch counts.
func parseCtxtSwitches(b []byte) int64 {
	var n int64
	for line := range strings.SplitSeq(string(b), "\n") {
		for _, key := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
			if rest, ok := strings.CutPrefix(line, key); ok {
				v, _ := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
				n += v
			}
		}
	}
	return n
}

// memStatus is what /proc/<pid>/status says about memory, in KiB.
type memStatus struct {
	RSSKB  int64 // VmRSS
	PeakKB int64 // VmHWM, the peak resident set
	// AnonKB and FileKB split VmRSS: anonymous memory (the heaps: Go's and
	// SQLite's) and file-backed pages (mostly the binary's own code and
	// data, resident as they are first used, and reclaimable).
	AnonKB, FileKB int64
}

func readMemStatus(pid int) (memStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	defer f.Close()
	var m memStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for key, dst := range map[string]*int64{"VmRSS:": &m.RSSKB, "VmHWM:": &m.PeakKB, "RssAnon:": &m.AnonKB, "RssFile:": &m.FileKB} {
			if rest, ok := strings.CutPrefix(line, key); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				*dst = n
			}
		}
	}
	return m, sc.Err()
}

// fdCount is the number of open file descriptors of the process.
func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// machineBusySeconds is the CPU time the whole machine has spent busy (all
// CPUs, everything but idle and iowait), from the first line of /proc/stat.
func machineBusySeconds() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat")
	}
	var busy uint64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return float64(busy) / clockTicks, nil
}

// loadMeter measures the CPU that processes other than the bench and its
// stack use: on a shared machine, the sign that a measurement was disturbed.
type loadMeter struct {
	pids     func() []int // the stack's processes; the bench itself is added
	at       time.Time
	busy     float64
	own      float64
	disabled bool
}

func (m *loadMeter) ownSeconds() float64 {
	total := 0.0
	for _, pid := range append(m.pids(), os.Getpid()) {
		if s, err := cpuSeconds(pid); err == nil {
			total += s
		}
	}
	return total
}

// start begins a measurement.
func (m *loadMeter) start() {
	busy, err := machineBusySeconds()
	m.disabled = err != nil
	m.at, m.busy, m.own = time.Now(), busy, m.ownSeconds()
}

// otherCores is the CPU others used since start, in cores (-1 if unknown).
func (m *loadMeter) otherCores() float64 {
	busy, err := machineBusySeconds()
	if err != nil || m.disabled {
		return -1
	}
	wall := time.Since(m.at).Seconds()
	other := (busy - m.busy) - (m.ownSeconds() - m.own)
	return max(0, float64(int64(other/wall*100+0.5))/100)
}
