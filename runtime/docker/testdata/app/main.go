// Command app is the process inside runtime/docker's test image (FROM
// scratch, so it must be static and need nothing else).
//
//	app                 print to stdout and stderr, then wait for SIGTERM
//	                    and exit with $TERM_EXIT (default 0)
//	app -exit N         exit at once with N
//	app -alloc MiB      after 300ms, touch MiB of memory, then wait as above
//	app -health         exit with $HEALTH_EXIT (the health check), after
//	                    $HEALTH_SLEEP milliseconds if set
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

var sink [][]byte

func main() {
	exit := flag.Int("exit", -1, "exit at once with this code")
	alloc := flag.Int("alloc", 0, "MiB of memory to touch")
	health := flag.Bool("health", false, "run as the health check")
	flag.Parse()
	if *health {
		time.Sleep(time.Duration(envInt("HEALTH_SLEEP", 0)) * time.Millisecond)
		os.Exit(envInt("HEALTH_EXIT", 0))
	}
	// As PID 1, the process ignores SIGTERM until it has a handler: set
	// it before saying hello, which tests take as "ready".
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	fmt.Fprintln(os.Stdout, "hello stdout")
	fmt.Fprintln(os.Stderr, "hello stderr")
	if *exit >= 0 {
		os.Exit(*exit)
	}
	if *alloc > 0 {
		// The engine (20.10) watches for OOM only once the start has
		// completed: an OOM during start leaves OOMKilled false and
		// sends no oom event. Let the start complete first.
		time.Sleep(300 * time.Millisecond)
	}
	for i := 0; i < *alloc; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(j)
		}
		sink = append(sink, b)
	}
	<-sigs
	os.Exit(envInt("TERM_EXIT", 0))
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}
