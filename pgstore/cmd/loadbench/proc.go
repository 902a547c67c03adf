package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat, USER_HZ: 100
// per second on every Linux architecture Go supports. (It is what
// sysconf(_SC_CLK_TCK), and so `getconf CLK_TCK`, returns; reading it
// would need cgo.)
const clockTick = time.Second / 100

// errNoProc is the answer of the CPU readers where there is no Linux /proc.
var errNoProc = errors.New("unavailable: needs Linux /proc")

// procStat is what the benchmark reads of /proc/PID/stat.
type procStat struct {
	pid, ppid int
	comm      string
	// The CPU time in ticks, in user and system mode, of the process (all
	// its threads) and of its children that exited and that it waited for.
	utime, stime, cutime, cstime int64
}

// readStat reads /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	if runtime.GOOS != "linux" {
		return procStat{}, errNoProc
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat parses the content of /proc/PID/stat: "pid (comm) state ppid
// ...", where comm may hold spaces and parentheses, so the fields after it
// are counted from its last ')'. utime is field 14, stime 15, cutime 16,
// cstime 17 (proc(5)).
func parseStat(b []byte) (procStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return procStat{}, fmt.Errorf("malformed stat %q", b)
	}
	var s procStat
	var err error
	if s.pid, err = strconv.Atoi(string(bytes.TrimSpace(b[:open]))); err != nil {
		return procStat{}, fmt.Errorf("malformed stat %q", b)
	}
	s.comm = string(b[open+1 : end])
	f := strings.Fields(string(b[end+1:])) // f[0] is field 3, the state
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("malformed stat %q", b)
	}
	field := func(n int) int64 {
		v, e := strconv.ParseInt(f[n-3], 10, 64)
		err = errors.Join(err, e)
		return v
	}
	s.ppid = int(field(4))
	s.utime, s.stime, s.cutime, s.cstime = field(14), field(15), field(16), field(17)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat %q: %w", b, err)
	}
	return s, nil
}

// processCPU is the CPU time that process pid (all its threads) has used,
// in user and system mode.
func processCPU(pid int) (time.Duration, error) {
	s, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	return time.Duration(s.utime+s.stime) * clockTick, nil
}

// postgresCPU is the CPU time that the PostgreSQL servers on this machine
// have used: every process whose comm is "postgres", and the children that
// each postmaster (a postgres process whose parent is not one) has reaped,
// so that backends that come and go between two readings count too.
// It returns how many processes it found, and an error when it found none.
func postgresCPU() (time.Duration, int, error) {
	if runtime.GOOS != "linux" {
		return 0, 0, errNoProc
	}
	dir, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	var procs []procStat
	isPostgres := map[int]bool{}
	for _, e := range dir {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(pid)
		if err != nil || s.comm != "postgres" {
			continue // not postgres, or it exited since ReadDir
		}
		procs = append(procs, s)
		isPostgres[pid] = true
	}
	if len(procs) == 0 {
		return 0, 0, errors.New("unavailable: no postgres process on this machine")
	}
	var ticks int64
	for _, s := range procs {
		ticks += s.utime + s.stime
		if !isPostgres[s.ppid] {
			ticks += s.cutime + s.cstime
		}
	}
	return time.Duration(ticks) * clockTick, len(procs), nil
}

// machineCPU is the CPU time that the machine's processors have spent
// busy (not idle, not waiting for I/O), from the first line of /proc/stat:
// "cpu user nice system idle iowait irq softirq steal ...".
func machineCPU() (time.Duration, error) {
	if runtime.GOOS != "linux" {
		return 0, errNoProc
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseMachineStat(line)
}

// parseMachineStat parses the "cpu" line of /proc/stat.
func parseMachineStat(line string) (time.Duration, error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("malformed /proc/stat line %q", line)
	}
	var ticks int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc/stat line %q", line)
		}
		if i != 3 && i != 4 { // idle, iowait
			ticks += n
		}
	}
	return time.Duration(ticks) * clockTick, nil
}

// machine describes this machine: CPUs, CPU model, kernel and Go.
func machine() string {
	var parts []string
	cpus := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	if m := cpuModel(); m != "" {
		cpus += " (" + m + ")"
	}
	parts = append(parts, cpus)
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		parts = append(parts, "Linux "+strings.TrimSpace(string(b)))
	} else {
		parts = append(parts, runtime.GOOS)
	}
	parts = append(parts, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return strings.Join(parts, ", ")
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
