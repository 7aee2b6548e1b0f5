// Command probe is the test workload of berth's end-to-end tests: an HTTP
// server like the example app that can also crash, exit, eat memory or act
// as a client, chosen by flags or environment, so one FROM scratch image
// covers every case.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	exit := flag.Int("exit", -1, "exit with this code after -after")
	after := flag.Duration("after", 0, "delay before -exit")
	serving := flag.Bool("serve", false, "with -exit: serve (and pass health checks) until then")
	oom := flag.Bool("oom", false, "allocate memory until killed")
	get := flag.String("get", "", "GET this URL and exit 0 if it answers 200")
	dial := flag.String("dial", "", "open a TCP connection to host:port and exit 0 if it connects")
	health := flag.Bool("healthcheck", false, "check the local server's /healthz")
	echo := flag.String("echo", "", "print this and exit 0")
	spew := flag.Int("spew", 0, "print this many lines as fast as possible and exit 0")
	file := flag.String("file", "", "print this file's mode, owner, SHA-256 and whether it can be written (never its content)")
	flag.Parse()

	if v := os.Getenv("PROBE_EXIT"); v != "" && *exit < 0 {
		*exit, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("PROBE_AFTER"); v != "" && *after == 0 {
		*after, _ = time.ParseDuration(v)
	}
	switch {
	case *spew > 0:
		spewLines(*spew)
		return
	case *echo != "":
		fmt.Println(*echo)
		fmt.Fprintln(os.Stderr, "stderr:"+*echo)
		return
	case *file != "":
		os.Exit(describe(*file))
	case *health:
		os.Exit(check("http://127.0.0.1:" + port() + "/healthz"))
	case *get != "":
		os.Exit(check(*get))
	case *dial != "":
		c, err := net.DialTimeout("tcp", *dial, 2*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		c.Close()
		return
	case *oom || os.Getenv("PROBE_OOM") != "":
		var hog [][]byte
		for {
			b := make([]byte, 4<<20)
			for i := range b {
				b[i] = 1
			}
			hog = append(hog, b)
			time.Sleep(time.Millisecond)
		}
	case crashFirst():
		time.Sleep(*after)
		fmt.Println("crashing on purpose (PROBE_CRASHES)")
		os.Exit(3)
	case *exit >= 0 && *serving:
		go func() {
			time.Sleep(*after)
			fmt.Printf("exiting with %d\n", *exit)
			os.Exit(*exit)
		}()
	case *exit >= 0:
		time.Sleep(*after)
		fmt.Printf("exiting with %d\n", *exit)
		os.Exit(*exit)
	}
	serve()
}

// spewLines writes n numbered lines to stdout as fast as it can, through
// one buffered writer (the bench of log ingest).
func spewLines(n int) {
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	b := make([]byte, 0, 128)
	for i := 0; i < n; i++ {
		b = append(b[:0], "spew line "...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, " the quick brown fox jumps over the lazy dog\n"...)
		w.Write(b)
	}
	w.Flush()
}

// chatter prints PROBE_LINES numbered lines at start (every fifth on
// stderr), and with PROBE_TICK one more line per tick for as long as it
// runs: the output the log tests read back.
func chatter() {
	n, _ := strconv.Atoi(os.Getenv("PROBE_LINES"))
	for i := 0; i < n; i++ {
		if i%5 == 4 {
			fmt.Fprintf(os.Stderr, "line %d\n", i)
		} else {
			fmt.Printf("line %d\n", i)
		}
	}
	tick, _ := time.ParseDuration(os.Getenv("PROBE_TICK"))
	if tick <= 0 {
		return
	}
	go func() {
		for i := 0; ; i++ {
			fmt.Printf("tick %d\n", i)
			time.Sleep(tick)
		}
	}()
}

func describe(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fi, err := os.Stat(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st := fi.Sys().(*syscall.Stat_t)
	writable := false
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		writable = true
		f.Close()
	}
	fmt.Printf("mode=%o uid=%d gid=%d sha256=%x writable=%v\n", fi.Mode().Perm(), st.Uid, st.Gid, sha256.Sum256(b), writable)
	return 0
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}

func check(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}

func serve() {
	chatter()
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	// PROBE_STATUS makes every page but "/" (the readiness path) answer
	// with another status, and PROBE_DELAY every page answer more slowly:
	// a bad or slow version that passes its readiness check, so only its
	// traffic shows the fault.
	status := http.StatusOK
	if v, err := strconv.Atoi(os.Getenv("PROBE_STATUS")); err == nil && v > 0 {
		status = v
	}
	delay, _ := time.ParseDuration(os.Getenv("PROBE_DELAY"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if r.URL.Path != "/" {
			w.WriteHeader(status)
		}
		fmt.Fprintf(w, "probe %s %s\n", host, os.Getenv("VERSION"))
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	// PROBE_DATA serves a directory (a volume) under /data/ and records
	// each start in its file "boots".
	if dir := os.Getenv("PROBE_DATA"); dir != "" {
		if f, err := os.OpenFile(dir+"/boots", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(f, host)
			f.Close()
		}
		mux.Handle("/data/", http.StripPrefix("/data/", http.FileServer(http.Dir(dir))))
	}
	srv := &http.Server{Addr: ":" + port(), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}

// crashFirst reports whether this start is one of the first PROBE_CRASHES
// starts of the container, which crash: the count is kept in the
// container's own file system, which a restart in place keeps.
func crashFirst() bool {
	n, err := strconv.Atoi(os.Getenv("PROBE_CRASHES"))
	if err != nil || n <= 0 {
		return false
	}
	b, _ := os.ReadFile("/probe-crashes")
	done, _ := strconv.Atoi(string(b))
	if done >= n {
		return false
	}
	_ = os.WriteFile("/probe-crashes", []byte(strconv.Itoa(done+1)), 0o644)
	return true
}
