package ingress

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

// TestTaskStoppingDrainsPublishedPorts: a connection forwarded to a
// stopping task's published port keeps working until it closes by
// itself or the drain timeout passes; then the proxy closes it, and
// TaskStopping returns only after that.
func TestTaskStoppingDrainsPublishedPorts(t *testing.T) {
	t.Parallel()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	// A free port for the published side.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	published := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	_, tport, _ := net.SplitHostPort(echo.Addr().String())
	target, _ := strconv.Atoi(tport)

	c := NewController(New(Options{}), ControllerOptions{BindHost: "127.0.0.1", DrainTimeout: 500 * time.Millisecond})
	defer c.Close()
	task := api.Task{ID: "a", Stack: "s", Service: "db", Revision: 1}
	c.TaskReady(task, &api.ServiceSpec{Ports: []api.Port{{Target: uint16(target), Published: published}}}, "127.0.0.1")

	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(published))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	roundTrip := func() error {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		_, err := io.ReadFull(conn, buf)
		return err
	}
	if err := roundTrip(); err != nil {
		t.Fatalf("through the published port: %v", err)
	}
	stopped := make(chan time.Duration)
	go func() {
		start := time.Now()
		c.TaskStopping(context.Background(), task)
		stopped <- time.Since(start)
	}()
	time.Sleep(100 * time.Millisecond)
	if err := roundTrip(); err != nil {
		t.Fatalf("the connection broke while draining: %v", err)
	}
	took := <-stopped
	if took < 400*time.Millisecond {
		t.Fatalf("TaskStopping returned after %s with a connection open; want the drain timeout", took)
	}
	if err := roundTrip(); err == nil {
		t.Fatal("the connection still works after the drain timeout")
	}
}

// TestPortErrors: a published port another program holds is reported,
// retried, and bound once it is free.
func TestPortErrors(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(taken.Addr().(*net.TCPAddr).Port)
	c := NewController(New(Options{}), ControllerOptions{BindHost: "127.0.0.1"})
	defer c.Close()
	c.TaskReady(api.Task{ID: "a", Stack: "s", Service: "db", Revision: 1}, &api.ServiceSpec{Ports: []api.Port{{Target: 5432, Published: port}}}, "127.0.0.1")
	errs, _ := c.PortErrors(context.Background())
	if len(errs) != 1 || errs[0].Port != port || errs[0].Service != "s/db" || errs[0].Err == "" {
		t.Fatalf("port errors %+v, want port %d of s/db", errs, port)
	}
	taken.Close()
	if errs, _ := c.PortErrors(context.Background()); len(errs) != 0 {
		t.Fatalf("port errors after the port was freed: %+v", errs)
	}
	if conn, err := net.Dial("tcp", taken.Addr().String()); err != nil {
		t.Fatalf("the port is not published after the retry: %v", err)
	} else {
		conn.Close()
	}
}
