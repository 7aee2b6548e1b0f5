package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func logsStack(replicas int, env string) string {
	return fmt.Sprintf(`
services:
  web:
    image: %s
    environment: {%s}
    deploy:
      replicas: %d
`, probeImage, env, replicas)
}

// logLines runs `berth logs --json` and decodes its lines.
func (b *berth) logLines(args ...string) []api.LogLine {
	b.t.Helper()
	out := b.mustCLI(append([]string{"logs", "--json"}, args...)...)
	var ls []api.LogLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l api.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			b.t.Fatalf("berth logs --json printed %q: %v", sc.Text(), err)
		}
		ls = append(ls, l)
	}
	return ls
}

// TestLogs: the output of every task is kept from its first line, merged
// in time order across tasks, and selected by service, task, revision,
// time, grep and tail; -f follows new lines.
func TestLogs(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	b.deploy("chat", logsStack(2, "PROBE_LINES: '200'"))
	b.waitRunning("chat", "web", 2)

	var all []api.LogLine
	waitFor(t, 30*time.Second, "400 lines kept", func() (bool, string) {
		all = b.logLines("chat")
		return len(all) == 400, fmt.Sprintf("%d lines", len(all))
	})
	perTask := map[string][]int{}
	for i, l := range all {
		if i > 0 && l.Time.Before(all[i-1].Time) {
			t.Fatalf("line %d is earlier than the line before it", i)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(l.Line, "line "))
		if err != nil || l.Service != "web" || l.Revision != 1 || l.Stack != "chat" {
			t.Fatalf("line %+v", l)
		}
		if want := api.StreamStdout; n%5 == 4 {
			want = api.StreamStderr
			if l.Stream != want {
				t.Fatalf("line %d came from %s, want %s", n, l.Stream, want)
			}
		}
		perTask[l.Task] = append(perTask[l.Task], n)
	}
	if len(perTask) != 2 {
		t.Fatalf("lines of %d tasks, want 2", len(perTask))
	}
	// The engine stamps stdout and stderr in two readers, so only each
	// stream keeps the program's order.
	var task string
	for id, ns := range perTask {
		task = id
		seen := map[int]bool{}
		last := map[bool]int{false: -1, true: -1}
		for _, n := range ns {
			stderr := n%5 == 4
			if n <= last[stderr] || seen[n] {
				t.Fatalf("task %s: line %d after line %d of the same stream", id, n, last[stderr])
			}
			seen[n], last[stderr] = true, n
		}
		if len(seen) != 200 {
			t.Fatalf("task %s: %d distinct lines, want 200", id, len(seen))
		}
	}

	if got := b.logLines("chat", "web", "--tail", "5"); len(got) != 5 || !got[4].Time.Equal(all[399].Time) {
		t.Fatalf("--tail 5: %d lines, last %v", len(got), got)
	}
	if got := b.logLines("chat", task[:6]); len(got) != 200 || got[0].Task != task {
		t.Fatalf("one task by ID prefix: %d lines", len(got))
	}
	if got := b.logLines("chat", "--grep", `^line 1[0-9]$`); len(got) != 20 {
		t.Fatalf("--grep: %d lines, want 20", len(got))
	}
	if got := b.logLines("chat", "--revision", "2"); len(got) != 0 {
		t.Fatalf("--revision 2: %d lines, want none", len(got))
	}
	mid := all[200].Time
	if got := b.logLines("chat", "--since", mid.Format(time.RFC3339Nano)); len(got) != 200 {
		t.Fatalf("--since the 201st line: %d lines, want 200", len(got))
	}
	if got := b.logLines("chat", "--until", mid.Format(time.RFC3339Nano)); len(got) != 200 {
		t.Fatalf("--until the 201st line: %d lines, want 200", len(got))
	}
	plain := b.mustCLI("logs", "chat", "web", "--tail", "1")
	if !strings.HasPrefix(plain, "web.") || !strings.Contains(plain, "| line ") {
		t.Fatalf("plain output %q", plain)
	}
	if out, code := b.cli("logs", "chat", "--grep", "("); code != 2 || !strings.Contains(out, "regular expression") {
		t.Fatalf("bad --grep: exit %d: %s", code, out)
	}
	if out, code := b.cli("logs", "nosuch"); code != 3 {
		t.Fatalf("logs of an unknown stack: exit %d: %s", code, out)
	}

	// Follow: a new revision's tasks print their lines while we follow.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, "logs", "-f", "--json", "--tail", "1", "chat")
	cmd.Env = append(os.Environ(), "BERTH_HOST=unix://"+filepath.Join(b.dir, "berth.sock"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	b.deploy("chat", logsStack(1, "PROBE_LINES: '50', VERSION: 'v2'"))
	sc := bufio.NewScanner(stdout)
	seen := 0
	for sc.Scan() && seen < 50 {
		var l api.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("followed %q: %v", sc.Text(), err)
		}
		if l.Revision == 2 {
			seen++
		}
	}
	if seen < 50 {
		t.Fatalf("followed %d lines of revision 2, want 50", seen)
	}
}

// TestLogsAcrossBerthRestarts: a container printing a numbered line every
// few milliseconds keeps printing while berth is killed and while it is
// stopped; after each restart berth reads on from where it was, so the
// kept sequence has neither gaps nor duplicates.
func TestLogsAcrossBerthRestarts(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	b.deploy("tick", logsStack(1, "PROBE_TICK: '3ms'"))
	b.waitRunning("tick", "web", 1)
	ticks := func() []int {
		var ns []int
		for _, l := range b.logLines("tick") {
			if n, err := strconv.Atoi(strings.TrimPrefix(l.Line, "tick ")); err == nil {
				ns = append(ns, n)
			}
		}
		return ns
	}
	waitFor(t, 30*time.Second, "ticks kept", func() (bool, string) { n := len(ticks()); return n > 100, fmt.Sprint(n) })

	b.kill9()
	time.Sleep(1500 * time.Millisecond)
	b.start()
	time.Sleep(1500 * time.Millisecond)
	b.stop()
	time.Sleep(time.Second)
	b.start()

	var ns []int
	waitFor(t, 30*time.Second, "ticks after the restarts", func() (bool, string) {
		ns = ticks()
		return len(ns) > 1500, fmt.Sprint(len(ns))
	})
	for i, n := range ns {
		if n != i {
			t.Fatalf("kept tick %d where tick %d belongs (a gap or a duplicate); around: %v", n, i, ns[max(0, i-3):min(len(ns), i+3)])
		}
	}
}

// TestLogsFollowRotation: a service asks the engine for a small json-file
// log (logging.options max-size 64k, max-file 5) and prints a numbered
// line every millisecond, so the engine rotates the file about once a
// second; berth follows each rotation and keeps every line once.
func TestLogsFollowRotation(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	b.deploy("rot", fmt.Sprintf(`
services:
  web:
    image: %s
    environment: {PROBE_TICK: '1ms'}
    logging:
      options: {max-size: 64k, max-file: "5"}
`, probeImage))
	b.waitRunning("rot", "web", 1)
	cs := b.containers("rot")
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	var ns []int
	waitFor(t, 60*time.Second, "over 12,000 ticks kept (some 10 rotations)", func() (bool, string) {
		ns = ns[:0]
		for _, l := range b.logLines("rot", "-n", "100000") {
			if n, err := strconv.Atoi(strings.TrimPrefix(l.Line, "tick ")); err == nil {
				ns = append(ns, n)
			}
		}
		return len(ns) > 12000, fmt.Sprint(len(ns))
	})
	for i, n := range ns {
		if n != i {
			t.Fatalf("kept tick %d where tick %d belongs (a gap or a duplicate); around: %v", n, i, ns[max(0, i-3):min(len(ns), i+3)])
		}
	}
	// 12,000 ticks are some 800 KB of json-file log, and the engine keeps
	// at most 5 × 64 KiB: most ticks were read from files since removed
	// (the five files are some 4 s of lag the reader may fall behind by
	// on a busy machine before it loses lines).
	out, err := exec.Command("docker", "inspect", "-f", "{{.HostConfig.LogConfig.Config}}|{{.LogPath}}", cs[0].ID).CombinedOutput()
	config, logPath, _ := strings.Cut(strings.TrimSpace(string(out)), "|")
	if err != nil || !strings.Contains(config, "max-size:64k") || !strings.Contains(config, "max-file:5") {
		t.Fatalf("container log config: %s %v", out, err)
	}
	if fi, err := os.Stat(logPath); err != nil || fi.Size() > 64<<10+1024 {
		t.Errorf("current log file %s: %v, %v bytes; want at most 64 KiB", logPath, err, fi)
	}
}
