package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProcessCPU reads the test process's own CPU time from /proc after
// some work and compares it with getrusage(2), whose microseconds come
// from the same accounting.
func TestProcessCPU(t *testing.T) {
	before := rusage(t)
	for rusage(t)-before < 200*time.Millisecond {
		spin()
	}
	got, err := processCPU(os.Getpid())
	require.NoError(t, err)
	want := rusage(t)
	// /proc truncates user and system time to whole ticks each, and a
	// little CPU passes between the readings.
	assert.InDelta(t, want.Seconds(), got.Seconds(), (5 * clockTick).Seconds(), "/proc %v, getrusage %v", got, want)
	assert.GreaterOrEqual(t, got, 200*time.Millisecond-2*clockTick)

	_, err = processCPU(1 << 30) // no such process
	assert.Error(t, err)
}

// rusage is the process's CPU time in user and system mode by getrusage.
func rusage(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var sink uint64

// spin burns a little CPU.
func spin() {
	x := sink
	for i := range 1_000_000 {
		x = x*6364136223846793005 + uint64(i)
	}
	sink = x
}

func TestMachineCPU(t *testing.T) {
	before, err := machineCPU()
	require.NoError(t, err)
	start := rusage(t)
	for rusage(t)-start < 100*time.Millisecond {
		spin()
	}
	after, err := machineCPU()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after-before, 100*time.Millisecond-2*clockTick, "at least what this process used")
}
