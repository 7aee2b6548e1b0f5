// Command shipit is the application of berth's delivery tests: an HTTP
// server that answers with the version its "base" layer carries
// (/base/version.txt), a test suite to run inside its image, and a way to
// look at the files the build context brought in. A base whose version
// is "broken" makes the server exit at start, as a bad rebuild would.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	selftest := flag.Bool("selftest", false, "run the test suite and exit with its result")
	fail := flag.Bool("fail", false, "with -selftest: run a failing suite (exit 3)")
	cat := flag.String("cat", "", "print this file (exit 4 if it is missing)")
	flag.Parse()
	switch {
	case *selftest:
		os.Exit(suite(*fail))
	case *cat != "":
		b, err := os.ReadFile(*cat)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		os.Stdout.Write(b)
		return
	}
	v := version()
	if v == "broken" {
		fmt.Fprintln(os.Stderr, "shipit: this build is broken")
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "shipit %s\n", v) })
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func version() string {
	b, err := os.ReadFile("/base/version.txt")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// suite is the application's tests, run in its own image: the base layer
// is there and says a version.
func suite(fail bool) int {
	fmt.Println("=== RUN   TestBase")
	if v := version(); v == "unknown" {
		fmt.Println("--- FAIL: TestBase: /base/version.txt is missing")
		return 1
	}
	fmt.Println("--- PASS: TestBase")
	if fail {
		fmt.Println("=== RUN   TestFailing\n--- FAIL: TestFailing: this suite fails on purpose")
		return 3
	}
	fmt.Println("PASS")
	return 0
}
