package main

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	// A comm may hold spaces and parentheses: the fields after it count
	// from its last ')'.
	s, err := parseStat([]byte("4242 (post (gres) x) S 17 4242 4242 0 -1 4194560 1 2 3 4 250 30 1200 800 20 0 1 0 5 6 7\n"))
	require.NoError(t, err)
	assert.Equal(t, procStat{pid: 4242, ppid: 17, comm: "post (gres) x", utime: 250, stime: 30, cutime: 1200, cstime: 800}, s)

	for _, bad := range []string{"", "4242 postgres S 1", "4242 (postgres) S 1 2 3", "x (postgres) S 17 4242 4242 0 -1 4194560 1 2 3 4 250 30 1200 800 20"} {
		_, err := parseStat([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}
}

func TestPostgresCPU(t *testing.T) {
	d, n, err := postgresCPU()
	if err != nil {
		t.Skipf("no PostgreSQL on this machine: %v", err)
	}
	assert.Positive(t, n)
	assert.GreaterOrEqual(t, d, time.Duration(0))
}

func TestMachine(t *testing.T) {
	m := machine()
	assert.Contains(t, m, runtime.Version())
	assert.Contains(t, m, "CPUs")
}

func TestNoProc(t *testing.T) {
	if runtime.GOOS == "linux" {
		t.Skip("Linux has /proc")
	}
	_, err := processCPU(os.Getpid())
	assert.ErrorIs(t, err, errNoProc)
	_, _, err = postgresCPU()
	assert.ErrorIs(t, err, errNoProc)
}

func TestParseMachineStat(t *testing.T) {
	d, err := parseMachineStat("cpu  100 2 30 5000 70 4 5 6 0 0")
	require.NoError(t, err)
	assert.Equal(t, (100+2+30+4+5+6)*clockTick, d, "all but idle and iowait")
	_, err = parseMachineStat("cpu0 1 2 3 4 5 6 7 8")
	assert.Error(t, err)
	_, err = parseMachineStat("cpu 1 2 3")
	assert.Error(t, err)
}
